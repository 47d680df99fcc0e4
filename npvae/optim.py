"""Adam and SGD, written out by hand. They walk the model's ``params`` and ``grads`` dicts
(same keys) and update the parameter arrays in place; they know nothing else of the model.
"""

import numpy as np


class Optimizer:
    """Shared bookkeeping: the params it updates, the step count and exportable state."""

    def __init__(self, params, lr):
        if not lr > 0:
            raise ValueError(f"lr must be a positive learning rate, got {lr!r}.")
        self.params = params
        self.lr = lr
        self.t = 0  # steps taken; Adam's bias correction counts these, not epochs
        self._slots = {}  # name of a per-parameter state ("m", "v", "velocity") -> dict of arrays

    def _slot(self, name):
        """Per-parameter state arrays, zeros at first, in each parameter's dtype."""
        if name not in self._slots:
            self._slots[name] = {k: np.zeros_like(p) for k, p in self.params.items()}
        return self._slots[name]

    def _check_grads(self, grads):
        if grads.keys() != self.params.keys():
            missing, extra = self.params.keys() - grads.keys(), grads.keys() - self.params.keys()
            raise ValueError(f"grads must have the keys of params; missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}.")

    def state_dict(self):
        """The state as plain arrays: {"t": (), "<slot>.<param>": array}, e.g. "m.out.W"."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        for slot, arrays in self._slots.items():
            state.update({f"{slot}.{k}": a.copy() for k, a in arrays.items()})
        return state

    def load_state_dict(self, state):
        """Restore the state exported by ``state_dict`` (copies into this optimizer's arrays)."""
        self.t = int(state["t"])
        for key, value in state.items():
            if key == "t":
                continue
            slot, name = key.split(".", 1)
            if name not in self.params:
                raise ValueError(f"optimizer state has {key!r}, but the model has no {name!r}.")
            self._slot(slot)[name][...] = value


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    v ← momentum · v + g,   p ← p - lr · v   (with momentum = 0, simply p ← p - lr · g).
    """

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
        self.momentum = momentum

    def step(self, grads):
        self._check_grads(grads)
        self.t += 1
        velocity = self._slot("velocity") if self.momentum else None
        for k, p in self.params.items():
            g = grads[k]
            if velocity is not None:
                v = velocity[k]
                v *= self.momentum
                v += g
                g = v
            p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), with bias correction by the number of steps t.

    m ← β₁ m + (1 - β₁) g,       v ← β₂ v + (1 - β₂) g²,
    m̂ = m / (1 - β₁ᵗ),           v̂ = v / (1 - β₂ᵗ),
    p ← p - lr · m̂ / (√v̂ + eps).
    ``weight_decay`` adds weight_decay · p to g first (L2 regularisation, as torch.optim.Adam).
    The first step is p ← p - lr · g / (|g| + eps). ``lr`` may be changed between steps.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must each be in [0, 1), got {betas!r}.")
        if not eps > 0 or weight_decay < 0:
            raise ValueError(f"eps must be > 0 and weight_decay ≥ 0, got {eps!r}, {weight_decay!r}.")
        self.betas, self.eps, self.weight_decay = (b1, b2), eps, weight_decay

    def step(self, grads):
        self._check_grads(grads)
        self.t += 1
        b1, b2 = self.betas
        m_all, v_all = self._slot("m"), self._slot("v")
        # Python floats, so that float32 arrays stay float32.
        step_size = self.lr / (1 - b1**self.t)  # lr / (1 - β₁ᵗ) folds m̂'s correction in
        sqrt_c2 = (1 - b2**self.t) ** 0.5  # √v̂ = √v / √(1 - β₂ᵗ)
        for k, p in self.params.items():
            g = grads[k]
            if self.weight_decay:
                g = g + self.weight_decay * p
            m, v = m_all[k], v_all[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            # p -= lr · m̂ / (√v̂ + eps), with m̂ = m / (1 - β₁ᵗ) and √v̂ = √v / √(1 - β₂ᵗ)
            denom = np.sqrt(v)
            denom /= sqrt_c2
            denom += self.eps
            p -= step_size * m / denom
