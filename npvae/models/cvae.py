"""The conditional VAE (Sohn et al. 2015): q(z|x, y) and p(x|z, y), with y one of C classes.

    encoder   [x, onehot(y)] ─► the VAE's encoder ─► mu, logvar           q(z|x,y)  (B, D + C)
    sampler   z = mu + exp(logvar / 2) · eps,   eps ~ N(0, I)
    decoder   [z, onehot(y)] ─► the VAE's decoder ─► logits or mean       p(x|z,y)  (N, Z + C)
    prior     p(z) = N(0, I), the same for every class

    loss = (1/B) Σ_b [ NLL(x_b | z_b, y_b) + beta · KL(q(z|x_b, y_b) ‖ N(0, I)) ]

Everything else is the VAE's, unchanged: the heads, the likelihoods, the ELBO, IWAE and
free-bits objectives and their hand-written backward. The label enters as the VAE's explicit
condition input ``cond = onehot(y)``, (B, C), and the VAE does the rest:

1. the first layer of the encoder has D + C inputs, and the first layer of the decoder Z + C
   (the last rows of its W are the label's: W = [W_x; W_y], so [x, onehot] W = x W_x + W_y[y]);
2. with K samples of z per example, the decoder's rows are z.reshape(K·B, Z), so row k·B + b
   is joined to onehot(y_b): the condition is tiled K times (``VAE.loss_and_grads``: z_in);
3. the backward of a concatenation is a slice, d[z, onehot] = [dz, donehot]. The label is
   data, not a parameter, so its part is dropped: dz = d[z, onehot][:, :Z].
"""

import dataclasses
import numbers

import numpy as np

from ..core import checks
from ..core.vae import DEFAULT_HIDDEN_DIMS, DEFAULT_LATENT_DIM, VAE, VAEConfig


@dataclasses.dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    """A VAEConfig with the number of classes C."""

    n_classes: int = dataclasses.field(kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "n_classes", _n_classes(self.n_classes))


def _n_classes(n):
    """n as an int ≥ 2, or a ValueError."""
    if not (isinstance(n, numbers.Real) and not isinstance(n, bool)
            and float(n).is_integer() and n >= 2):
        raise ValueError(f"n_classes must be an integer ≥ 2, got {n!r}.")
    return int(n)


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

    conditional = True
    config_class = CVAEConfig

    def __init__(self, input_dim, n_classes, hidden_dims=DEFAULT_HIDDEN_DIMS,
                 latent_dim=DEFAULT_LATENT_DIM, likelihood="bernoulli", activation="relu",
                 sigma=1.0, dtype=np.float32, seed=None):
        self.n_classes = self.cond_dim = _n_classes(n_classes)  # C, read by VAE._cond
        super().__init__(input_dim, hidden_dims, latent_dim, likelihood, activation, sigma,
                         dtype, seed)

    def _config_extras(self):
        return {"n_classes": self.n_classes}

    def _onehot(self, y, batch_size=None):
        """The condition input cond = onehot(y), (B, C), from labels y : (B,)."""
        return one_hot(as_labels(y, self.n_classes, batch_size), self.n_classes, self.dtype)

    # ------------------------------------------------------------------------ the public API
    # Each method is the VAE's, called with cond = onehot(y).

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
        return super().loss_and_grads(x, eps, beta, rng, objective, k, free_bits,
                                      cond=self._onehot(y, np.shape(x)[0]))

    def encode(self, x, y):
        """q(z|x,y): x : (B, D), y : (B,)  ->  (mu, logvar), each (B, Z)."""
        return super().encode(x, cond=self._onehot(y, np.shape(x)[0]))

    def decode(self, z, y, draw=False, rng=None):
        """The mean of p(x|z,y), or with draw=True a draw x ~ p(x|z,y): z : (N, Z), y : (N,)
        ->  (N, D)."""
        return super().decode(z, draw, rng, cond=self._onehot(y, np.shape(z)[0]))

    def reconstruct(self, x, y):
        """decode(mu(x, y), y), (B, D). For style transfer, decode the mean with other labels."""
        mu, _ = self.encode(x, y)
        return self.decode(mu, y)

    def sample(self, labels, rng=None, draw=False):
        """z ~ N(0, I), then the mean of p(x|z,y) (draw=False) or a draw x ~ p(x|z,y)
        (draw=True; see ``VAE.sample``), for the given labels: (N, D).

        labels : (N,) int array, or an int N for labels 0, 1, ..., C-1, 0, 1, ... (N of them).
        """
        if isinstance(labels, numbers.Integral) and not isinstance(labels, bool):
            labels = np.arange(checks.positive_int(labels, "labels")) % self.n_classes
        labels = as_labels(labels, self.n_classes)
        rng = self.rng if rng is None else checks.as_generator(rng, "rng")
        z = self._prior_draws(len(labels), rng)  # (N, Z)
        return self.decode(z, labels, draw, rng)

    def log_weights(self, x, y, eps):
        """log w = log p(x|z,y) + log p(z) - log q(z|x,y) for each sample: (K, B)."""
        return super().log_weights(x, eps, cond=self._onehot(y, np.shape(x)[0]))

    def prior_log_weights(self, x, y, z):
        """log p(x|z,y) at draws z ~ p(z): (K, B) (``VAE.prior_log_weights``)."""
        return super().prior_log_weights(x, z, cond=self._onehot(y, np.shape(x)[0]))

    def elbo_terms(self, x, y, eps):
        """-log p(x|z, y) and KL(q(z|x, y) ‖ N(0, I)) per example at one sample (``VAE``)."""
        return super().elbo_terms(x, eps, cond=self._onehot(y, np.shape(x)[0]))

    def nll(self, x, y, eps):
        """-log p(x|z, y) at the samples z = mu + std·eps, forward only: (B,) or (K, B)."""
        return super().nll(x, eps, cond=self._onehot(y, np.shape(x)[0]))
