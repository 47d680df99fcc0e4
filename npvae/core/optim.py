"""Adam and SGD, written out by hand. They walk the model's ``params`` and ``grads`` dicts
(same keys) and update the parameter arrays in place; they know nothing else of the model.

Subnormal floats. Where a gradient stays zero for long stretches (border pixels that are
almost always 0, latent units the KL has switched off), the optimizer's state decays
geometrically (Adam's m by β₁ = 0.9 and v by β₂ = 0.999 per step, SGD's velocity by its
momentum) into the subnormal range, below ``np.finfo(dtype).smallest_normal`` (1.2e-38 in
float32), and stays there: once x · β rounds back to x, the decay stops. Arithmetic on
subnormals costs tens of times more on many CPUs (issue 26: on an Intel Xeon, an epoch grew
from 2.5 to 4.3 s over 8 epochs, with 47,000 subnormal entries in Adam's state). So every
``FLUSH_EVERY`` steps each optimizer sets such entries to zero (``flush_subnormals``). A
flushed entry would have been below 1.2e-38 (float32) anyway; a normal-range trajectory is
unchanged, bit for bit.

Why every 50 steps and not every step: flushing Adam's m and v over the 652,824 parameters
of the standard model (784-400-20, float32) costs 0.5-0.7 ms, 40 % of a fused Adam step
(1.85 ms without, 2.59 ms with a flush at every step, AMD EPYC, medians of 200 steps), and
7 % of a textbook one (11.4 ms). Every 50 steps it costs 0.015 ms a step. An entry that has
decayed below 1.2e-38 would stay subnormal for ever (β₁ · x rounds back to x at float32's
smallest subnormal, 1.4e-45), so a flush every 50 steps leaves it subnormal for at most 49
steps instead of for the rest of the run: on the Intel Xeon of issue 26 it held the epoch at
2.5 s. On this project's AMD EPYC, subnormal multiplications and additions cost no more than
normal ones (sqrt 1.4×), and 8 epochs drift by no more than the noise with or without the
flush, though 66,000 entries are subnormal by then without it (docs/performance.md).
"""

import math

import numpy as np

# Steps between two flushes of subnormal optimizer state (see the module docstring).
FLUSH_EVERY = 50


def flush_subnormals(*arrays):
    """Set, in place, the entries of each array below its dtype's smallest normal magnitude to 0.

    |a| < np.finfo(a.dtype).smallest_normal (1.2e-38 in float32, 2.2e-308 in float64) → 0.
    """
    for a in arrays:
        tiny = np.finfo(a.dtype).smallest_normal
        np.copyto(a, 0, where=np.abs(a) < tiny)


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

    def _scratch(self, name):
        """A work array shaped like params[name], reused by every step (not optimizer state)."""
        if not hasattr(self, "_work"):
            self._work = {}
        if name not in self._work:
            self._work[name] = np.empty_like(self.params[name])
        return self._work[name]

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

    SLOTS = ()  # the names of the per-parameter states a subclass keeps

    def load_state_dict(self, state):
        """Restore the state exported by ``state_dict`` (copies into this optimizer's arrays).
        Raises ValueError naming the entry that does not fit (before changing anything)."""
        t = np.asarray(state.get("t", -1))
        if t.shape != () or t.dtype.kind not in "iu" or t < 0:
            raise ValueError(f"'t' must be a step count ≥ 0, got {state.get('t')!r}")
        for key, value in state.items():
            slot, _, name = key.partition(".")
            if key == "t":
                continue
            if slot not in self.SLOTS or name not in self.params:
                raise ValueError(f"unexpected entry {key!r}: {type(self).__name__} keeps "
                                 f"{', '.join(self.SLOTS) or 'nothing'} for each parameter")
            if np.shape(value) != self.params[name].shape:
                raise ValueError(f"{key!r} has shape {np.shape(value)}, but the parameter is "
                                 f"{self.params[name].shape}")
        self.t = int(t)
        for key, value in state.items():
            if key != "t":
                slot, name = key.split(".", 1)
                self._slot(slot)[name][...] = value


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    v ← momentum · v + g,   p ← p - lr · v   (with momentum = 0, simply p ← p - lr · g).
    Every ``FLUSH_EVERY`` steps, velocities below the smallest normal float become 0
    (``flush_subnormals``; see the module docstring).
    """

    SLOTS = ("velocity",)

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
                if self.t % FLUSH_EVERY == 0:
                    flush_subnormals(v)  # no subnormal velocity (see the module docstring)
                g = v
            p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1), with bias correction by the number of steps t.

    m ← β₁ m + (1 - β₁) g,       v ← β₂ v + (1 - β₂) g²,
    m̂ = m / (1 - β₁ᵗ),           v̂ = v / (1 - β₂ᵗ),
    θ ← θ - α · m̂ / (√v̂ + ε).
    Every ``FLUSH_EVERY`` steps, entries of m and v below the smallest normal float are set to 0
    before they are used (``flush_subnormals``; the module docstring says why and how often).
    ``weight_decay`` adds weight_decay · θ to g first (L2 regularisation, as torch.optim.Adam).
    The first step is θ ← θ - α · g / (|g| + ε). ``lr`` (α) may be changed between steps.

    ``fused=False`` runs ``step`` as written above, line by line; ``fused=True`` runs its twin
    ``_step_fused``: the same update in the paper's "more efficient" order, in place, with no
    temporary arrays (tests/test_fast_paths.py holds the two to float rounding).
    """

    SLOTS = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), epsilon=1e-8, weight_decay=0.0,
                 fused=False):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must each be in [0, 1), got {betas!r}.")
        if not epsilon > 0 or not weight_decay >= 0:
            raise ValueError(f"epsilon must be > 0 and weight_decay ≥ 0, got {epsilon!r}, "
                             f"{weight_decay!r}.")
        self.betas, self.epsilon, self.weight_decay = (b1, b2), epsilon, weight_decay
        self.fused = bool(fused)

    def step(self, grads):
        """One update of every parameter, from grads (the keys of params)."""
        self._check_grads(grads)
        self.t += 1
        if self.fused:
            return self._step_fused(grads)
        b1, b2 = self.betas  # Python floats, so that float32 arrays stay float32
        m_all, v_all = self._slot("m"), self._slot("v")
        for name, theta in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * theta
            m, v = m_all[name], v_all[name]
            m[...] = b1 * m + (1 - b1) * g  # first moment
            v[...] = b2 * v + (1 - b2) * g * g  # second moment
            if self.t % FLUSH_EVERY == 0:  # decayed into subnormals, which are slow: to zero
                flush_subnormals(m, v)
            m_hat = m / (1 - b1**self.t)  # bias-corrected
            v_hat = v / (1 - b2**self.t)
            theta -= self.lr * m_hat / (np.sqrt(v_hat) + self.epsilon)

    def _step_fused(self, grads):
        """The fast twin of ``step``: Kingma & Ba's "more efficient order" (section 2), in place.

        With √v̂ = √v / √(1 - β₂ᵗ),  α · m̂ / (√v̂ + ε) = α_t · m / (√v + ε̂),
        α_t = α · √(1 - β₂ᵗ) / (1 - β₁ᵗ),  ε̂ = ε · √(1 - β₂ᵗ): both bias corrections folded
        into two scalars, and every array operation written into a reused work array.
        """
        b1, b2 = self.betas
        m_all, v_all = self._slot("m"), self._slot("v")
        sqrt_c2 = math.sqrt(1 - b2**self.t)
        alpha_t = self.lr * sqrt_c2 / (1 - b1**self.t)
        epsilon_hat = self.epsilon * sqrt_c2
        for name, theta in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * theta
            m, v, tmp = m_all[name], v_all[name], self._scratch(name)
            m *= b1  # m ← β₁ m + (1 - β₁) g
            m += np.multiply(g, 1 - b1, out=tmp)
            v *= b2  # v ← β₂ v + (1 - β₂) g²
            tmp = np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            if self.t % FLUSH_EVERY == 0:  # as in ``step``
                flush_subnormals(m, v)
            tmp = np.sqrt(v, out=tmp)  # θ ← θ - α_t · m / (√v + ε̂)
            tmp += epsilon_hat
            tmp = np.divide(m, tmp, out=tmp)
            tmp *= alpha_t
            theta -= tmp
