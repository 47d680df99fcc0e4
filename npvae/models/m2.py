"""The semi-supervised VAE "M2" (Kingma, Rezende, Mohamed & Welling 2014), by hand.

    generative   p(x, y, z) = p(x|y, z) p(y) p(z),   p(y) uniform over C classes, p(z) = N(0, I)
    classifier   q(y|x) = softmax(f(x)):  x ─► [dense ─► act] × n ─► dense ─► logits    (B, C)
    encoder      q(z|x, y): the CVAE's, on [x, onehot(y)]
    decoder      p(x|y, z): the CVAE's, on [z, onehot(y)]

A label y_b = -1 marks an unlabelled example (scikit-learn's convention). Per example, with
L(x, y) = NLL(x | z, y) + beta · KL(q(z|x, y) ‖ N(0, I)), the CVAE's negative ELBO up to the
constant log C of the uniform p(y) (which has no gradient):

    labelled (x, y)    L(x, y) + alpha · (-log q(y|x))
    unlabelled x       U(x) = Σ_c q(c|x) L(x, c) - H(q(·|x)) = Σ_c q(c|x) [L(x, c) + log q(c|x)]

    loss = (1/B) [ Σ_labelled (L + alpha · CE) + Σ_unlabelled U ]          (nats per example)

The CVAE's bound is computed on "rows": each labelled example once, with its label, and each
unlabelled example C times, once per class, all sharing that example's eps. Row r's weight
w_r is 1 for a labelled row and q(c|x_b) for class c of an unlabelled x_b, and the CVAE's
backward is the VAE's with every row's gradient scaled by w_r / B. The classifier gets its
gradient from two places: alpha times the cross-entropy of the labelled examples, and the
weights q(c|x) of the unlabelled ones, entropy included (docs/semi_supervised.md derives it):

    ∂U/∂logits_c = q_c (L_c + log q_c - U),      ∂(alpha · CE)/∂logits = alpha (q - onehot(y)).

Symbols: B batch (B_l labelled, B_u unlabelled), R = B_l + C·B_u rows, D data, H hidden,
Z latent, K samples of z, C classes.
"""

import dataclasses
import math
import numbers

import numpy as np

from ..core import checks
from ..core import distributions as dist  # by module: a planted bug (verify.plants) reaches it
from ..core.layers import dense_backward, dense_forward, mlp_backward, mlp_forward
from ..core.vae import DEFAULT_HIDDEN_DIMS, DEFAULT_LATENT_DIM, layer_shapes
from .classifier import categorical_nll, classifier_shapes, log_softmax
from .cvae import CVAE, CVAEConfig, one_hot

UNLABELLED = -1


@dataclasses.dataclass(frozen=True)
class SemiSupervisedVAEConfig(CVAEConfig):
    """A CVAEConfig with the classifier's hidden sizes and the weight alpha of its
    cross-entropy on the labelled examples."""

    classifier_dims: tuple = dataclasses.field(default=DEFAULT_HIDDEN_DIMS, kw_only=True)
    alpha: float = dataclasses.field(default=1.0, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        dims = self.classifier_dims
        if isinstance(dims, (numbers.Number, str)) or not all(
                isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0
                for h in dims):
            raise ValueError(f"classifier_dims must be a sequence of positive layer sizes, got "
                             f"{dims!r}; () gives softmax regression.")
        object.__setattr__(self, "classifier_dims", tuple(int(h) for h in dims))
        if not (isinstance(self.alpha, numbers.Real) and math.isfinite(self.alpha)
                and self.alpha >= 0):
            raise ValueError(f"alpha must be a number ≥ 0, got {self.alpha!r}.")
        object.__setattr__(self, "alpha", float(self.alpha))

    def to_dict(self):
        return {**super().to_dict(), "classifier_dims": list(self.classifier_dims)}


def as_partial_labels(y, n_classes, batch_size=None):
    """y as an int64 array (B,) of classes in [0, C), or -1 for unlabelled; else an error."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise TypeError(f"y has dtype {y.dtype} and shape {y.shape}; pass a 1-D int array of "
                        f"classes in [0, {n_classes}), with -1 for an unlabelled example.")
    if batch_size is not None and len(y) != batch_size:
        raise ValueError(f"y has {len(y)} labels but the batch has {batch_size} examples; "
                         f"pass one label per example (-1 for unlabelled).")
    if len(y) and (y.min() < UNLABELLED or y.max() >= n_classes):
        raise ValueError(f"y has labels in [{y.min()}, {y.max()}]; a semi-supervised model of "
                         f"{n_classes} classes takes labels in [0, {n_classes}) and -1 for "
                         f"an unlabelled example.")
    return y.astype(np.int64, copy=False)


class SemiSupervisedVAE(CVAE):
    """M2: a CVAE whose label is a latent variable when it is missing, with a classifier q(y|x).

    Parameters
    ----------
    input_dim : int, D.
    n_classes : int, C ≥ 2.
    hidden_dims, latent_dim, likelihood, activation, sigma, dtype, seed : as for ``CVAE``.
    classifier_dims : the hidden sizes of q(y|x) (``classifier.0``, ..., then ``logits``).
    alpha : float ≥ 0, the weight of the labelled examples' cross-entropy -log q(y|x).

    Train it with ``npvae.train(model, x, y=y)``, y = -1 for the unlabelled examples.
    """

    config_class = SemiSupervisedVAEConfig
    partial_labels = True  # y may hold -1 (the training loop checks labels with check_labels)

    def __init__(self, input_dim, n_classes, hidden_dims=DEFAULT_HIDDEN_DIMS,
                 latent_dim=DEFAULT_LATENT_DIM, likelihood="bernoulli", activation="relu",
                 sigma=1.0, dtype=np.float32, seed=None, classifier_dims=DEFAULT_HIDDEN_DIMS,
                 alpha=1.0):
        self._classifier_extras = {"classifier_dims": classifier_dims,
                                   "alpha": alpha}
        super().__init__(input_dim, n_classes, hidden_dims, latent_dim, likelihood, activation,
                         sigma, dtype, seed)
        self._classifier_depth = len(self.config.classifier_dims)

    def _config_extras(self):
        return {**super()._config_extras(), **self._classifier_extras}

    @classmethod
    def shapes_of(cls, config):
        """The CVAE's layers, then the classifier's (``classifier.i`` and ``logits``)."""
        return (layer_shapes(config, config.n_classes, cls.encoder_heads)
                + classifier_shapes(config.input_dim, config.classifier_dims, config.n_classes,
                                    config.activation))

    def check_labels(self, y, batch_size=None):
        """y checked: (B,) ints in [0, C), -1 for an unlabelled example."""
        return as_partial_labels(y, self.n_classes, batch_size)

    # ------------------------------------------------------------------------ the loss

    def loss_and_grads(self, x, y, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0):
        """M2's loss (module docstring), in nats per example, and its gradient.

        x : (B, D); y : (B,) ints, -1 for unlabelled; eps : (B, Z) or (K, B, Z), shared by
        the C rows of an unlabelled example (None: drawn from ``rng``, else the model's own);
        beta : the KL's weight in L. Only objective="elbo" and free_bits=0 are supported.
        Returns loss, grads (the keys of ``params``) and stats: "loss", "recon" (the mean
        weighted NLL per example), "kl" (the mean weighted KL), "ce" (the labelled examples'
        mean cross-entropy), "entropy" (the unlabelled ones' mean H(q)), "labelled" (B_l).
        """
        if objective != "elbo" or free_bits:
            raise ValueError("the semi-supervised VAE trains on the ELBO only: use "
                             "objective='elbo' and free_bits=0.")
        cfg, p, C = self.config, self.params, self.n_classes
        x = checks.as_batch(x, cfg.input_dim, self.dtype,
                            unit_interval=cfg.likelihood == "bernoulli")
        y = self.check_labels(y, len(x))
        eps = checks.as_eps(eps, len(x), cfg.latent_dim, self.dtype, k, rng, self.rng)
        beta, B = checks.nonnegative(beta, "beta"), len(x)
        lab, unl = np.flatnonzero(y >= 0), np.flatnonzero(y < 0)  # (B_l,), (B_u,)
        B_l, B_u = len(lab), len(unl)
        ex = np.concatenate([lab, np.repeat(unl, C)])  # (R,): the example of each row
        y_rows = np.concatenate([y[lab], np.tile(np.arange(C), B_u)])  # (R,): its class

        # ---------------------------------------------------------------- forward
        # q(y|x) on every example.
        h, cls_caches = mlp_forward(x, p, "classifier", self._classifier_depth,
                                    self._act_forward)
        logits, logits_cache = dense_forward(h, p["logits.W"], p["logits.b"])  # (B, C)
        log_q = log_softmax(logits)  # (B, C)
        q = np.exp(log_q)  # (B, C)
        # The CVAE's bound on every row: q(z|x, y), z = mu + std · eps, p(x|z, y), the KL.
        fwd = self._forward(x[ex], eps[..., ex, :], one_hot(y_rows, C, self.dtype))
        R = len(ex)
        K = fwd.z.size // fwd.mu.size
        kl, dkl_dmu, dkl_dlogvar = dist.kl_standard_normal(fwd.mu, fwd.logvar)  # (R,), (R, Z) × 2
        nll = fwd.nll.reshape(K, R).mean(axis=0)  # (R,), averaged over the K samples
        L = nll + beta * kl  # (R,): the -ELBO of each row's (x, y)
        # Weights: 1 for a labelled row, q(c|x_b) for unlabelled x_b's row of class c.
        L_u = L[B_l:].reshape(B_u, C)  # (B_u, C)
        q_u, log_q_u = q[unl], log_q[unl]  # (B_u, C)
        w = np.concatenate([np.ones(B_l, self.dtype), q_u.reshape(-1)])  # (R,)
        U = (q_u * (L_u + log_q_u)).sum(axis=1)  # (B_u,): Σ_c q L - H(q)
        ce, dce_dlogits = categorical_nll(logits[lab], y[lab])  # (B_l,), (B_l, C)
        loss = (L[:B_l].sum() + U.sum() + cfg.alpha * ce.sum()) / B

        # ---------------------------------------------------------------- backward
        grads = dict.fromkeys(p)
        # 1. The CVAE, each row weighted by w_r / B. The decoder heads of sample k of row r
        #    (row k·R + r of the heads) get w_r / (K·B) times ∂NLL/∂head; back to dz.
        row_scale = np.tile(w / (K * B), K)[:, None]  # (K·R, 1)
        dheads = [d * row_scale for d in fwd.dnll_dheads]  # each (K·R, D)
        dz = self._decode_backward(dheads, fwd.decoder_cache, grads).reshape(fwd.z.shape)
        # 2. The sampler, then the KL weighted by beta · w_r / B: the two paths ADD at mu and
        #    logvar (dmu = Σ_K dz + beta w/B · mu, dlogvar = Σ_K dz eps std/2 + ...).
        dmu, dlogvar = dist.reparameterize_backward(dz, fwd.sampler_cache)  # (R, Z) each
        kl_scale = (beta * w / B)[:, None]  # (R, 1)
        dmu += kl_scale * dkl_dmu
        dlogvar += kl_scale * dkl_dlogvar
        # 3. The encoder q(z|x, y), to every weight (x and onehot(y) are data: no dinput).
        self._gaussian_backward(dmu, dlogvar, fwd.encoder_cache, grads, "encoder", "mu",
                                "logvar", need_dinput=False)
        # 4. The classifier's logits, both paths, 1/B applied here once:
        #      labelled    alpha · (softmax - onehot(y))
        #      unlabelled  ∂U/∂logits_c = q_c (L_c + log q_c - U)   (the weights and H(q))
        dlogits = np.zeros_like(logits)  # (B, C)
        dlogits[lab] = cfg.alpha * dce_dlogits
        dlogits[unl] = q_u * (L_u + log_q_u - U[:, None])
        dlogits /= B
        # 5. The classifier's output layer and trunk (no dx: x is data).
        dh, grads["logits.W"], grads["logits.b"] = dense_backward(
            dlogits, logits_cache, need_dx=self._classifier_depth > 0)  # (B, H)
        mlp_backward(dh, cls_caches, grads, "classifier", self._act_backward,
                     need_dinput=False)

        stats = {"loss": float(loss), "recon": float(w @ nll) / B, "kl": float(w @ kl) / B,
                 "ce": float(ce.mean()) if B_l else 0.0, "labelled": B_l,
                 "entropy": float(-(q_u * log_q_u).sum(axis=1).mean()) if B_u else 0.0}
        return float(loss), grads, stats

    # ------------------------------------------------------------------------ the classifier

    def log_proba(self, x):
        """log q(y|x) for every class, forward only: x : (N, D)  ->  (N, C)."""
        x = checks.as_batch(x, self.input_dim, self.dtype)
        h, _ = mlp_forward(x, self.params, "classifier", self._classifier_depth,
                           self._act_forward)
        logits, _ = dense_forward(h, self.params["logits.W"], self.params["logits.b"])
        return log_softmax(logits)

    def predict_proba(self, x):
        """q(y|x): (N, D)  ->  (N, C), each row summing to 1."""
        return np.exp(self.log_proba(x))

    def predict(self, x):
        """argmax_y q(y|x): (N, D)  ->  (N,) ints."""
        return self.log_proba(x).argmax(axis=1)
