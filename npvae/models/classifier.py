"""A discriminative classifier by hand: a softmax MLP, p(y|x) = Categorical(y; softmax(f(x))).

    x ─► [dense ─► act] × n ─► h ─► dense ─► logits ─► softmax ─► q(y|x)      (B, D) -> (B, C)

    loss = (1/B) Σ_b -log softmax(logits_b)[y_b]        (the cross-entropy, nats per example)

The generative models of npvae (the CVAE by Bayes' rule) model p(x|y) and turn it into p(y|x);
this one models p(y|x) directly and nothing else. With ``hidden_dims=()`` it is softmax
(multinomial logistic) regression. It trains through ``npvae.train(clf, x, y=y)`` and saves
and loads like every model; it has no ELBO, so its stats report the cross-entropy as
"recon" (the data term) and 0 as "kl".

Symbols: B batch, D data, H hidden, C classes.
"""

import dataclasses

import numpy as np

from ..core import checks
from ..core.distributions import logsumexp
from ..core.layers import (ACTIVATIONS, dense_backward, dense_forward, dense_init, mlp_backward,
                           mlp_forward)
from ..core.vae import DEFAULT_HIDDEN_DIMS, VAEConfig
from .cvae import _n_classes, as_labels


# ----------------------------------------------------------------------------- the terminal node

def log_softmax(logits):
    """log softmax(logits) = logits - log Σ_C e^logits, along the last axis, without overflow.

    logits : (..., C) array  ->  (..., C) array of log-probabilities (each row's exp sums to 1).
    """
    return logits - logsumexp(logits, axis=-1)[..., None]


def categorical_nll(logits, y):
    """-log Categorical(y | softmax(logits)), the cross-entropy on logits, and its gradient.

    nll     = log Σ_C e^logits - logits[y]     (the softmax fused with the cross-entropy),
    dlogits = softmax(logits) - onehot(y).

    logits : (B, C) array, y : (B,) int array of classes in [0, C)
    ->  nll : (B,),  dlogits : (B, C).
    """
    log_q = log_softmax(logits)  # (B, C)
    rows = np.arange(len(y))
    dlogits = np.exp(log_q)  # (B, C): softmax(logits)
    dlogits[rows, y] -= 1
    return -log_q[rows, y], dlogits


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Everything that fixes a classifier's architecture; saved in checkpoints as JSON."""

    input_dim: int
    n_classes: int
    hidden_dims: tuple = DEFAULT_HIDDEN_DIMS
    activation: str = "relu"
    dtype: str = "float32"

    def __post_init__(self):
        # The VAE's config checks input_dim, hidden_dims, activation and dtype the same way.
        VAEConfig(self.input_dim, self.hidden_dims, 1, activation=self.activation,
                  dtype=self.dtype)
        object.__setattr__(self, "n_classes", _n_classes(self.n_classes))
        object.__setattr__(self, "input_dim", int(self.input_dim))
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    @property
    def likelihood(self):
        """What the training loop asks to decide whether x must lie in [0, 1]: it need not."""
        return "categorical"

    def to_dict(self):
        return {**dataclasses.asdict(self), "hidden_dims": list(self.hidden_dims)}


def classifier_shapes(input_dim, hidden_dims, n_classes, activation, prefix="classifier"):
    """(name, fan_in, fan_out, activation that follows) of every dense layer: the trunk
    ``{prefix}.0``, ``{prefix}.1``, ..., then the output layer ``logits`` (H, C)."""
    sizes = (input_dim, *hidden_dims)
    shapes = [(f"{prefix}.{i}", sizes[i], sizes[i + 1], activation) for i in range(len(sizes) - 1)]
    return shapes + [("logits", sizes[-1], n_classes, "identity")]


class Classifier:
    """A softmax MLP trained by hand-written backpropagation on the cross-entropy.

    Parameters
    ----------
    input_dim : int, D.
    n_classes : int, C ≥ 2; labels are integers in [0, C).
    hidden_dims : sequence of int, the hidden sizes; () gives softmax regression.
    activation : one of ``npvae.core.layers.ACTIVATIONS``.
    dtype : np.float32 (training) or np.float64 (gradient checks).
    seed : int, Generator or None, seeds the initialisation and ``rng``.
    """

    config_class = ClassifierConfig
    conditional = True  # it takes labels y beside x
    discriminative = True  # it models p(y|x) only: no eps, beta, k or free bits

    def __init__(self, input_dim, n_classes, hidden_dims=DEFAULT_HIDDEN_DIMS, activation="relu",
                 dtype=np.float32, seed=None):
        self.config = ClassifierConfig(input_dim, n_classes, tuple(hidden_dims), activation,
                                       np.dtype(dtype).name)
        self.dtype = np.dtype(self.config.dtype)
        self.n_classes = self.config.n_classes
        self.rng = checks.as_generator(seed, "seed")
        self._act_forward, self._act_backward = ACTIVATIONS[activation]
        self._depth = len(self.config.hidden_dims)
        self.params = {}
        for name, fan_in, fan_out, act in self.shapes_of(self.config):
            self.params[f"{name}.W"], self.params[f"{name}.b"] = dense_init(
                fan_in, fan_out, act, self.rng, self.dtype)

    @classmethod
    def from_config(cls, config, seed=None):
        """Build a classifier from its config (or that config's dict)."""
        if not isinstance(config, ClassifierConfig):
            config = ClassifierConfig(**config)
        return cls(**dataclasses.asdict(config), seed=seed)

    @classmethod
    def shapes_of(cls, config):
        """(name, fan_in, fan_out, activation) of every dense layer (checkpoints check files
        with it)."""
        return classifier_shapes(config.input_dim, config.hidden_dims, config.n_classes,
                                 config.activation)

    @property
    def input_dim(self):
        return self.config.input_dim

    def __repr__(self):
        cfg = self.config
        dims = "-".join(map(str, [cfg.input_dim, *cfg.hidden_dims, cfg.n_classes]))
        n_params = sum(p.size for p in self.params.values())
        return (f"Classifier({dims}, {cfg.activation}, {cfg.dtype}, "
                f"{n_params:,} parameters)")

    def loss_and_grads(self, x, y):
        """The mean cross-entropy -log q(y|x), in nats per example, and its gradient.

        x : (B, D) array, y : (B,) int array of labels in [0, C).
        Returns loss (float), grads (a dict with the keys of ``params``) and stats: "loss",
        "recon" (the cross-entropy again: the data term), "kl" (0: there is no latent),
        "accuracy" (the batch's, at the argmax).
        """
        x = checks.as_batch(x, self.input_dim, self.dtype)
        y = as_labels(y, self.n_classes, len(x))
        p, B = self.params, len(x)

        # ---------------------------------------------------------------- forward
        h, trunk_caches = mlp_forward(x, p, "classifier", self._depth, self._act_forward)
        logits, logits_cache = dense_forward(h, p["logits.W"], p["logits.b"])  # (B, C)
        nll, dnll_dlogits = categorical_nll(logits, y)  # (B,), (B, C)
        loss = nll.mean()

        # ---------------------------------------------------------------- backward
        grads = dict.fromkeys(p)
        # 1. The softmax fused with the cross-entropy: ∂NLL_b/∂logits_b = softmax(logits_b) -
        #    onehot(y_b). The loss is the mean over the batch, so the 1/B is applied here, once.
        dlogits = dnll_dlogits / B  # (B, C)
        # 2. The output layer: dW = hᵀ dlogits, db = Σ_B dlogits, dh = dlogits Wᵀ.
        dh, grads["logits.W"], grads["logits.b"] = dense_backward(
            dlogits, logits_cache, need_dx=self._depth > 0)  # (B, H)
        # 3. The trunk, act then dense, layer by layer; x is data, so no dx at the first layer.
        mlp_backward(dh, trunk_caches, grads, "classifier", self._act_backward,
                     need_dinput=False)

        accuracy = float((logits.argmax(axis=1) == y).mean())
        stats = {"loss": float(loss), "recon": float(loss), "kl": 0.0, "accuracy": accuracy}
        return float(loss), grads, stats

    def log_proba(self, x):
        """log q(y|x) for every class, forward only: x : (N, D)  ->  (N, C)."""
        x = checks.as_batch(x, self.input_dim, self.dtype)
        h, _ = mlp_forward(x, self.params, "classifier", self._depth, self._act_forward)
        logits, _ = dense_forward(h, self.params["logits.W"], self.params["logits.b"])
        return log_softmax(logits)  # (N, C)

    def predict_proba(self, x):
        """q(y|x) = softmax(logits): (N, D)  ->  (N, C), each row summing to 1."""
        return np.exp(self.log_proba(x))

    def predict(self, x):
        """The most probable class, argmax_y q(y|x): (N, D)  ->  (N,) ints."""
        return self.log_proba(x).argmax(axis=1)

    def cross_entropy(self, x, y):
        """-log q(y|x) per example, forward only: (N,) (the validation loss of training)."""
        y = as_labels(y, self.n_classes, np.shape(x)[0])
        return -self.log_proba(x)[np.arange(len(y)), y]
