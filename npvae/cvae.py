"""The conditional VAE (Sohn et al. 2015): q(z|x, y) and p(x|z, y), with y one of C classes.

    encoder   [x, onehot(y)] ─► the VAE's encoder ─► mu, logvar           q(z|x,y)  (B, D + C)
    sampler   z = mu + exp(logvar / 2) · eps,   eps ~ N(0, I)
    decoder   [z, onehot(y)] ─► the VAE's decoder ─► logits or mean       p(x|z,y)  (N, Z + C)
    prior     p(z) = N(0, I), the same for every class

    loss = (1/B) Σ_b [ NLL(x_b | z_b, y_b) + beta · KL(q(z|x_b, y_b) ‖ N(0, I)) ]

Everything else is the VAE's, unchanged: the heads, the likelihoods, the ELBO, IWAE and
free-bits objectives and their hand-written backward. A CVAE differs in two places only:

1. the first layer of the encoder has D + C inputs, and the first layer of the decoder Z + C
   (the last rows of its W are the label's: W = [W_x; W_y], so [x, onehot] W = x W_x + W_y[y]);
2. the backward of a concatenation is a slice, d[z, onehot] = [dz, donehot]. The label is
   data, not a parameter, so its part is dropped: dz = d[z, onehot][:, :Z].

The labels are held by the model for the duration of one call (``_given``), so that the VAE's
forward and backward, which know nothing of them, run as they are.
"""

import contextlib
import dataclasses
import numbers

import numpy as np

from .vae import VAE, VAEConfig


@dataclasses.dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    """A VAEConfig with the number of classes C."""

    n_classes: int = dataclasses.field(kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.n_classes, bool) or int(self.n_classes) != self.n_classes \
                or self.n_classes < 2:
            raise ValueError(f"n_classes must be an integer ≥ 2, got {self.n_classes!r}.")
        object.__setattr__(self, "n_classes", int(self.n_classes))


def as_labels(y, n_classes, batch_size=None):
    """Return y as an int64 array (B,) of classes in [0, C), or raise a TypeError/ValueError."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y has dtype {y.dtype}; labels must be integers in [0, {n_classes}), "
                        f"e.g. y.astype(int) (not one-hot vectors, not floats).")
    if y.ndim != 1:
        raise ValueError(f"y has shape {y.shape}; labels must be a 1-D array (B,) of class "
                         f"indices. For one-hot labels pass y.argmax(axis=1).")
    if batch_size is not None and len(y) != batch_size:
        raise ValueError(f"y has {len(y)} labels but the batch has {batch_size} examples; "
                         f"pass one label per example.")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y has labels in [{y.min()}, {y.max()}], but this model has "
                         f"{n_classes} classes: labels must be in [0, {n_classes}).")
    return y.astype(np.int64, copy=False)


def one_hot(y, n_classes, dtype):
    """onehot[b, c] = 1 if y_b = c else 0: y : (B,) ints  ->  (B, C) array of ``dtype``."""
    return (y[:, None] == np.arange(n_classes)).astype(dtype)


class CVAE(VAE):
    """A conditional VAE: the VAE with a one-hot label joined to the encoder's and decoder's input.

    Parameters
    ----------
    input_dim : int, D.
    n_classes : int, C ≥ 2; labels are integers in [0, C).
    hidden_dims, latent_dim, likelihood, activation, sigma, dtype, seed : as for ``VAE``.

    The parameters have the VAE's names; ``encoder.0.W`` is (D + C, H1) and ``decoder.0.W`` is
    (Z + C, Hn) (with no hidden layers: ``mu.W``, ``logvar.W`` and ``out.W``, ``out_logvar.W``).
    """

    def __init__(self, input_dim, n_classes, hidden_dims=(400,), latent_dim=20,
                 likelihood="bernoulli", activation="relu", sigma=1.0, dtype=np.float32,
                 seed=None):
        config = CVAEConfig(input_dim, tuple(hidden_dims), latent_dim, likelihood, activation,
                            float(sigma), np.dtype(dtype).name, n_classes=n_classes)
        self.n_classes = config.n_classes  # read by _layer_shapes during the VAE's __init__
        self._onehot = None  # (B, C): the labels of the call in progress
        super().__init__(input_dim, hidden_dims, latent_dim, likelihood, activation, sigma,
                         dtype, seed)
        self.config = config

    @classmethod
    def from_config(cls, config, seed=None):
        """Build a model from a CVAEConfig or its dict."""
        if not isinstance(config, CVAEConfig):
            config = CVAEConfig(**config)
        return super().from_config(config, seed)

    def _layer_shapes(self):
        """The VAE's layers, with C more inputs on the first layer of the encoder and decoder."""
        deep = bool(self.config.hidden_dims)
        first_layers = (("encoder.0", "decoder.0") if deep
                        else ("mu", "logvar", "out", "out_logvar"))
        return [(name, fan_in + self.n_classes if name in first_layers else fan_in, fan_out, act)
                for name, fan_in, fan_out, act in super()._layer_shapes()]

    # ------------------------------------------------------------------------ the label input

    @contextlib.contextmanager
    def _given(self, y, x):
        """Hold onehot(y), (B, C), while the VAE's machinery runs on the batch x (B, ...)."""
        batch_size = np.shape(x)[0] if np.ndim(x) else None
        self._onehot = one_hot(as_labels(y, self.n_classes, batch_size), self.n_classes,
                               self.dtype)
        try:
            yield
        finally:
            self._onehot = None

    def _labels(self, n):
        """onehot(y) repeated for n = L·B rows: row l·B + b has label y_b, as z.reshape(-1, Z)."""
        if self._onehot is None:
            raise TypeError("a CVAE needs the labels: call it with y, e.g. encode(x, y).")
        return np.tile(self._onehot, (n // len(self._onehot), 1))  # (L·B, C)

    def _encode_forward(self, x):
        """q(z|x,y): the VAE's encoder on [x, onehot(y)], (B, D + C)."""
        return super()._encode_forward(np.concatenate([x, self._labels(len(x))], axis=1))

    def _decode_forward(self, z):
        """p(x|z,y): the VAE's decoder on [z, onehot(y)], (N, Z + C)."""
        return super()._decode_forward(np.concatenate([z, self._labels(len(z))], axis=1))

    def _decode_backward(self, dheads, cache, grads):
        """The VAE's decoder backward gives d[z, onehot] : (N, Z + C); dz is its first Z columns.
        (The encoder's input gradient is never computed, so it needs no slice.)"""
        return super()._decode_backward(dheads, cache, grads)[:, :self.latent_dim]  # (N, Z)

    # ------------------------------------------------------------------------ the public API

    def loss_and_grads(self, x, y, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0):
        """The negative ELBO (or IWAE bound) of p(x|y), in nats per example, and its gradient.

        Parameters
        ----------
        x : (B, D) array.
        y : (B,) int array of labels in [0, C).
        eps, beta, rng, objective, k, free_bits : as for ``VAE.loss_and_grads``.

        Returns
        -------
        loss, grads, stats : as for ``VAE.loss_and_grads``.
        """
        with self._given(y, x):
            return super().loss_and_grads(x, eps, beta=beta, rng=rng, objective=objective, k=k,
                                          free_bits=free_bits)

    def encode(self, x, y):
        """q(z|x,y): x : (B, D), y : (B,)  ->  (mu, logvar), each (B, Z)."""
        with self._given(y, x):
            return super().encode(x)

    def decode(self, z, y):
        """The mean of p(x|z,y): z : (N, Z), y : (N,)  ->  (N, D)."""
        with self._given(y, z):
            return super().decode(z)

    def reconstruct(self, x, y):
        """decode(mu(x, y), y), (B, D). For style transfer, decode the mean with other labels."""
        mu, _ = self.encode(x, y)
        return self.decode(mu, y)

    def sample(self, labels, rng=None):
        """Draws z ~ N(0, I) decoded with the given labels to the mean of p(x|z,y): (N, D).

        labels : (N,) int array, or an int N for labels 0, 1, ..., C-1, 0, 1, ... (N of them).
        """
        if isinstance(labels, numbers.Integral) and not isinstance(labels, bool):
            labels = np.arange(int(labels)) % self.n_classes
        labels = as_labels(labels, self.n_classes)
        rng = self.rng if rng is None else rng
        return self.decode(rng.standard_normal((len(labels), self.latent_dim), dtype=self.dtype),
                           labels)

    def log_weights(self, x, y, eps):
        """log w = log p(x|z,y) + log p(z) - log q(z|x,y) for each sample: (L, B)."""
        with self._given(y, x):
            return super().log_weights(x, eps)

    def nll(self, x, y, eps):
        """-log p(x|z, y) at the samples z = mu + σ·eps, forward only: (B,) or (L, B)."""
        with self._given(y, x):
            return super().nll(x, eps)

    def fit(self, x, **kwargs):
        """Not available: ``npvae.train`` feeds no labels. A CVAE trains by a loop of
        ``loss_and_grads(x_batch, y_batch)`` and ``Adam.step``, as in demos/cvae.py."""
        raise TypeError("npvae.train feeds no labels, so CVAE.fit is not available; train a "
                        "CVAE with a loop of loss_and_grads(x_batch, y_batch) and Adam.step "
                        "(demos/cvae.py shows one).")

    def log_likelihood(self, x, k=5000, rng=None, batch_size=None):
        """Not available: ``npvae.evaluate.log_likelihood`` feeds no labels. Estimate
        log p(x|y) from ``log_weights(x, y, eps)`` with eps of shape (k, B, Z) instead."""
        raise TypeError("CVAE.log_likelihood is not available (it feeds no labels); estimate "
                        "log p(x|y) as logsumexp over k of log_weights(x, y, eps) - log k.")
