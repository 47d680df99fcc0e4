"""The variational autoencoder: forward pass, negative ELBO, and its backward written out by hand.

    encoder   x ─► [dense ─► act] × n ─► h ─┬─► dense ─► mu                      q(z|x) =
                                            └─► dense ─► clamp ─► logvar           N(mu, diag e^logvar)
    sampler   z = mu + exp(logvar / 2) · eps,   eps ~ N(0, I)
    decoder   z ─► [dense ─► act] × n ─► h ─┬─► dense ─► logits or mean          p(x|z)
                                            └─► dense ─► clamp ─► logvar_x  (gaussian-learned only)

    loss = (1/B) Σ_b [ (1/K) Σ_k NLL(x_b | z_kb) + beta · KL(q(z|x_b) ‖ N(0, I)) ]   (nats)

Symbols (the same in every module): B batch, D data, H hidden, Z latent, K samples of z per
example (eps is (B, Z), or (K, B, Z) for K > 1), C classes of a condition.
Reading order: ``loss_and_grads`` dispatches to ``_elbo_loss_and_grads`` (or the IWAE bound,
``_iwae_loss_and_grads``); each runs ``_forward`` and then its backward, step by step, in
reverse order of the forward. ``npvae.verify.gradcheck`` proves each step against finite differences.

A condition (the CVAE's one-hot label) is an explicit input, ``cond`` (B, C): it is joined to x
where the encoder starts and to z where the decoder starts. A plain VAE passes None.
"""

import dataclasses
import math
import numbers

import numpy as np

from . import checks
from .distributions import (
    bernoulli_nll,
    free_bits_kl,
    gaussian_log_density,
    gaussian_nll,
    gaussian_nll_learned,
    kl_standard_normal,
    logsumexp,
    reparameterize_backward,
    reparameterize_forward,
    standard_normal_log_density,
)
from .layers import (
    ACTIVATIONS,
    clamp_backward,
    clamp_forward,
    dense_backward,
    dense_forward,
    dense_init,
    sigmoid,
)

# The default architecture, defined here once: 784-400-20 for MNIST.
DEFAULT_HIDDEN_DIMS = (400,)
DEFAULT_LATENT_DIM = 20

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned")
OBJECTIVES = ("elbo", "iwae")

# Every log-variance (the encoder's, and the decoder's for "gaussian-learned") is clamped to this
# range, so that exp(±logvar) is finite in float32 (it overflows beyond 88.7). The bounds never
# bind in healthy training: e^-30 ≈ 1e-13 and e^30 ≈ 1e13.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 30.0


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Everything that fixes the architecture; saved in checkpoints as JSON."""

    input_dim: int
    hidden_dims: tuple = DEFAULT_HIDDEN_DIMS
    latent_dim: int = DEFAULT_LATENT_DIM
    likelihood: str = "bernoulli"
    activation: str = "relu"
    sigma: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        if isinstance(self.hidden_dims, (numbers.Number, str)):
            raise TypeError(f"hidden_dims must be a sequence of layer sizes, got "
                            f"{self.hidden_dims!r}; write hidden_dims=({self.hidden_dims!r},) "
                            f"for one hidden layer, or () for none.")
        if not all(_is_int(h) for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be whole layer sizes, got {self.hidden_dims!r}.")
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        for name, value in [("input_dim", self.input_dim), ("latent_dim", self.latent_dim)]:
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        object.__setattr__(self, "input_dim", int(self.input_dim))
        object.__setattr__(self, "latent_dim", int(self.latent_dim))
        if any(h <= 0 for h in self.hidden_dims):
            raise ValueError(
                f"hidden_dims must be positive sizes, got {self.hidden_dims}; "
                f"use () for a linear VAE."
            )
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(
                f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}."
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}."
            )
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {self.sigma!r}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")

    def to_dict(self):
        return {**dataclasses.asdict(self), "hidden_dims": list(self.hidden_dims)}


def _is_int(value):
    """True for an integral number (3, np.int64(3), 3.0), False for 2.5, True/False or text."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and float(value).is_integer())


@dataclasses.dataclass
class Forward:
    """What the forward pass computed, and what its backward needs (``VAE._forward``).

    The per-sample NLL gradients are those of each sample's own sum over D, unscaled: the loss
    functions apply 1/B or 1/(K·B) to them.
    """

    mu: np.ndarray  # (B, Z), the mean of q(z|x)
    logvar: np.ndarray  # (B, Z), its log-variance, after the clamp
    z: np.ndarray  # (B, Z) or (K, B, Z): z = mu + exp(logvar / 2) · eps
    nll: np.ndarray  # (B,) or (K, B): -log p(x|z), summed over D
    dnll_dheads: tuple  # ∂NLL/∂head for each decoder head, each (B, D) or (K, B, D); or Nones
    encoder_cache: tuple  # (trunk caches, mu cache, logvar cache, clamp mask)
    sampler_cache: tuple  # (sigma, eps)
    decoder_cache: tuple  # (trunk caches, out cache, out_logvar caches or None)




def layer_shapes(config, cond_dim=0, heads=("mu", "logvar")):
    """(name, fan_in, fan_out, activation that follows) for every dense layer, in order, read
    from the config alone (nothing is allocated).

    A condition of C = cond_dim columns widens the input of the first layer of each side by C.
    ``heads`` names the encoder's output layers, each (H, Z): q(z|x)'s two, or an autoencoder's
    one code."""
    cfg, C = config, cond_dim
    act = cfg.activation
    enc = (cfg.input_dim + C, *cfg.hidden_dims)  # D + C, H1, ..., Hn: the input is [x, cond]
    dec = (cfg.latent_dim + C, *reversed(cfg.hidden_dims))  # Z + C, Hn, ..., H1: [z, cond]
    shapes = [(f"encoder.{i}", enc[i], enc[i + 1], act) for i in range(len(enc) - 1)]
    shapes += [(head, enc[-1], cfg.latent_dim, "identity") for head in heads]
    shapes += [(f"decoder.{i}", dec[i], dec[i + 1], act) for i in range(len(dec) - 1)]
    shapes += [("out", dec[-1], cfg.input_dim, "identity")]
    if cfg.likelihood == "gaussian-learned":
        shapes += [("out_logvar", dec[-1], cfg.input_dim, "identity")]
    return shapes


class VAE:
    """A VAE with MLP encoder and decoder, trained by hand-written backpropagation.

    Parameters
    ----------
    input_dim : int, D.
    hidden_dims : sequence of int, the encoder's hidden sizes; the decoder uses them reversed.
        Empty gives a linear VAE (which recovers probabilistic PCA with a Gaussian likelihood).
    latent_dim : int, Z.
    likelihood : "bernoulli" (on logits), "gaussian" (fixed ``sigma``) or "gaussian-learned"
        (a per-dimension log-variance from its own decoder head).
    activation : one of ``npvae.core.layers.ACTIVATIONS``.
    sigma : float, the fixed standard deviation of the "gaussian" likelihood.
    dtype : np.float32 (training) or np.float64 (gradient checks).
    seed : int, Generator or None, seeds the initialisation and the model's own generator, which
        draws eps when none is given.
    """

    config_class = VAEConfig  # a subclass with more fields names its own
    conditional = False  # a CVAE takes labels y beside x
    cond_dim = 0  # C, the width of the condition joined to x and to z
    encoder_heads = ("mu", "logvar")  # the encoder's output layers (an autoencoder has one)

    def __init__(self, input_dim, hidden_dims=DEFAULT_HIDDEN_DIMS, latent_dim=DEFAULT_LATENT_DIM,
                 likelihood="bernoulli", activation="relu", sigma=1.0, dtype=np.float32,
                 seed=None):
        self.config = self.config_class(input_dim, hidden_dims, latent_dim, likelihood,
                                        activation, float(sigma), np.dtype(dtype).name,
                                        **self._config_extras())
        self.dtype = np.dtype(self.config.dtype)
        self.rng = checks.as_generator(seed, "seed")
        self._act_forward, self._act_backward = ACTIVATIONS[activation]
        self.params = self._init_params(self.rng)

    def _config_extras(self):
        """The fields a subclass's config adds to VAEConfig (a CVAE's n_classes, ...)."""
        return {}

    @classmethod
    def from_config(cls, config, seed=None):
        """Build a model from its config (``config_class``) or that config's dict."""
        if not isinstance(config, cls.config_class):
            config = cls.config_class(**config)
        return cls(**dataclasses.asdict(config), seed=seed)

    # ------------------------------------------------------------------------ parameters

    def _layer_shapes(self):
        return self.shapes_of(self.config)

    @classmethod
    def shapes_of(cls, config):
        """(name, fan_in, fan_out, activation) of every dense layer of a model with this
        config, from the config alone (``layer_shapes``; checkpoints check files with it)."""
        return layer_shapes(config, getattr(config, "n_classes", 0), cls.encoder_heads)

    def _init_params(self, rng):
        n_params = sum((fan_in + 1) * fan_out for _, fan_in, fan_out, _ in self._layer_shapes())
        dims = "-".join(map(str, [self.input_dim, *self.config.hidden_dims, self.latent_dim]))
        checks.check_fits(4 * n_params * self.dtype.itemsize,
                          f"training a {dims} VAE ({n_params:.3g} parameters, each with a "
                          f"gradient and Adam's two moments)", "choose smaller layers")
        params = {}
        for name, fan_in, fan_out, act in self._layer_shapes():
            params[f"{name}.W"], params[f"{name}.b"] = dense_init(fan_in, fan_out, act, rng,
                                                                  self.dtype)
        return params

    @property
    def latent_dim(self):
        return self.config.latent_dim

    @property
    def input_dim(self):
        return self.config.input_dim

    @property
    def noise_dim(self):
        """The width of eps per sample: Z (a hierarchical VAE draws noise for each layer)."""
        return self.config.latent_dim

    # ------------------------------------------------------------------------ forward pieces

    def _dense(self, name, h):
        return dense_forward(h, self.params[f"{name}.W"], self.params[f"{name}.b"])

    def _mlp_forward(self, h, prefix):
        """h ─► [dense ─► act] for each hidden layer of the encoder's or decoder's trunk."""
        caches = []
        for i in range(len(self.config.hidden_dims)):
            h, dense_cache = self._dense(f"{prefix}.{i}", h)  # (N, H)
            h, act_cache = self._act_forward(h)  # (N, H)
            caches.append((dense_cache, act_cache))
        return h, caches

    def _mlp_backward(self, dh, prefix, caches, grads, need_dinput=True):
        """Backward through the trunk: act, then dense, last layer first. Returns d(input)."""
        for i in reversed(range(len(caches))):
            dense_cache, act_cache = caches[i]
            dh = self._act_backward(dh, act_cache)
            dh, grads[f"{prefix}.{i}.W"], grads[f"{prefix}.{i}.b"] = dense_backward(
                dh, dense_cache, need_dx=need_dinput or i > 0)
        return dh

    def _join(self, a, cond):
        """[a, cond], the input of a side's first layer: (N, ·) and (N, C) -> (N, · + C)."""
        if (cond is None) != (self.cond_dim == 0):
            raise TypeError("a CVAE needs the labels: call it with y, e.g. encode(x, y)."
                            if cond is None else "this model takes no condition.")
        return a if cond is None else np.concatenate([a, cond], axis=1)

    def _encode_forward(self, x, cond):
        """q(z|x): x : (B, D), cond : (B, C) or None  ->  mu, logvar : (B, Z), and the cache."""
        inputs = self._join(x, cond)  # (B, D + C)
        return self._gaussian_forward(inputs, "encoder", "mu", "logvar")

    def _gaussian_forward(self, inputs, trunk, mu_name, logvar_name):
        """A diagonal Gaussian computed by an MLP with two heads:

            inputs ─► [dense ─► act] × n ─► h ─┬─► dense ─► mu
                                               └─► dense ─► clamp ─► logvar

        inputs : (N, ·)  ->  mu, logvar : (N, ·), and the cache. The VAE's encoder is one; a
        hierarchical VAE has three (``npvae.models.hvae``)."""
        h, trunk_caches = self._mlp_forward(inputs, trunk)  # (N, H)
        mu, mu_cache = self._dense(mu_name, h)  # (N, Z)
        logvar_unclamped, logvar_cache = self._dense(logvar_name, h)  # (N, Z)
        logvar, inside = clamp_forward(logvar_unclamped, LOGVAR_MIN, LOGVAR_MAX)  # (N, Z)
        return mu, logvar, (trunk_caches, mu_cache, logvar_cache, inside)

    def _decode_forward(self, z, cond):
        """z : (N, Z), cond : (N, C) or None  ->  heads: (logits,), (mean,) or (mean, logvar_x),
        each (N, D), and the cache."""
        inputs = self._join(z, cond)  # (N, Z + C)
        h, trunk_caches = self._mlp_forward(inputs, "decoder")  # (N, H)
        out, out_cache = self._dense("out", h)  # (N, D)
        if self.config.likelihood != "gaussian-learned":
            return (out,), (trunk_caches, out_cache, None)
        logvar_x_unclamped, logvar_x_cache = self._dense("out_logvar", h)  # (N, D)
        logvar_x, inside = clamp_forward(logvar_x_unclamped, LOGVAR_MIN, LOGVAR_MAX)
        return (out, logvar_x), (trunk_caches, out_cache, (logvar_x_cache, inside))

    def _nll(self, heads, x, need_grad=True, fused=False):
        """-log p(x|z) per sample, (...,), and its gradient with respect to each head.

        With ``need_grad=False`` (evaluation) the gradients are not computed: each is None.
        """
        likelihood = self.config.likelihood
        if likelihood == "bernoulli":
            nll, dlogits = bernoulli_nll(heads[0], x, need_grad, fused=fused)
            return nll, (dlogits,)
        if likelihood == "gaussian":
            nll, dmean = gaussian_nll(heads[0], x, self.config.sigma, need_grad)
            return nll, (dmean,)
        nll, dmean, dlogvar_x = gaussian_nll_learned(heads[0], heads[1], x, need_grad)
        return nll, (dmean, dlogvar_x)

    def _forward(self, x, cond, eps, need_grad=True, fused=False):
        """The shared forward: q(z|x), the samples z, the decoder heads on them, and the NLL."""
        mu, logvar, encoder_cache = self._encode_forward(x, cond)  # (B, Z) each
        return self._forward_given_q(x, cond, mu, logvar, eps, need_grad, fused, encoder_cache)

    def _forward_given_q(self, x, cond, mu, logvar, eps, need_grad=True, fused=False,
                         encoder_cache=None):
        """The forward from q(z|x) = N(mu, diag e^logvar) on: the samples z, the decoder heads
        on them, and the NLL. mu, logvar : (B, Z), the encoder's or any other q's."""
        z, sampler_cache = reparameterize_forward(mu, logvar, eps)  # (K, B, Z) or (B, Z)
        nll, dnll_dheads, decoder_cache = self._decode_nll(x, cond, z, need_grad, fused)
        return Forward(mu, logvar, z, nll, dnll_dheads, encoder_cache, sampler_cache,
                       decoder_cache)

    def _decode_nll(self, x, cond, z, need_grad=True, fused=False):
        """-log p(x|z) at samples z (K, B, Z) or (B, Z), its gradient with respect to each
        decoder head, and the decoder's cache: (K, B) or (B,), heads each (K, B, D) or (B, D)."""
        z_rows = z.reshape(-1, self.latent_dim)  # (K·B, Z): row k·B + b is sample k of x_b
        cond_rows = None if cond is None else np.tile(cond, (len(z_rows) // len(cond), 1))
        heads, decoder_cache = self._decode_forward(z_rows, cond_rows)  # each (K·B, D)
        heads = tuple(a.reshape(*z.shape[:-1], -1) for a in heads)  # (K, B, D) or (B, D)
        nll, dnll_dheads = self._nll(heads, x, need_grad, fused)  # (K, B) or (B,): x broadcasts
        return nll, dnll_dheads, decoder_cache

    # ------------------------------------------------------------------------ backward pieces

    def _decode_backward(self, dheads, cache, grads):
        """Heads ─► decoder trunk. dheads : each (N, D)  ->  dz : (N, Z)."""
        trunk_caches, out_cache, logvar_x_caches = cache
        dh, grads["out.W"], grads["out.b"] = dense_backward(dheads[0], out_cache)
        if logvar_x_caches is not None:
            logvar_x_cache, inside = logvar_x_caches
            dlogvar_x_unclamped = clamp_backward(dheads[1], inside)  # 0 where the clamp binds
            dh_logvar_x, grads["out_logvar.W"], grads["out_logvar.b"] = dense_backward(
                dlogvar_x_unclamped, logvar_x_cache)
            dh += dh_logvar_x  # h feeds both heads: their gradients add
        dinputs = self._mlp_backward(dh, "decoder", trunk_caches, grads)  # (N, Z + C)
        return dinputs[:, :self.latent_dim]  # the condition is data: its gradient is dropped

    def _encode_backward(self, dmu, dlogvar, cache, grads):
        """Heads ─► encoder trunk. dmu, dlogvar : (B, Z). ∂L/∂x is not needed, so not computed."""
        self._gaussian_backward(dmu, dlogvar, cache, grads, "encoder", "mu", "logvar",
                                need_dinput=False)

    def _gaussian_backward(self, dmu, dlogvar, cache, grads, trunk, mu_name, logvar_name,
                           need_dinput=True):
        """Backward of ``_gaussian_forward``: dmu, dlogvar : (N, Z)  ->  d(inputs) (N, ·), or
        None with ``need_dinput=False``. The logvar head passes its gradient through its clamp
        (0 where it binds); the two heads meet at h, where their gradients add."""
        trunk_caches, mu_cache, logvar_cache, inside = cache
        need_dh = bool(trunk_caches) or need_dinput
        dlogvar_unclamped = clamp_backward(dlogvar, inside)  # (N, Z): 0 where the clamp binds
        dh, grads[f"{mu_name}.W"], grads[f"{mu_name}.b"] = dense_backward(
            dmu, mu_cache, need_dx=need_dh)
        dh_logvar, grads[f"{logvar_name}.W"], grads[f"{logvar_name}.b"] = dense_backward(
            dlogvar_unclamped, logvar_cache, need_dx=need_dh)
        if not need_dh:
            return None
        dh += dh_logvar  # h feeds both heads: their gradients add  (N, H)
        if not trunk_caches:  # no hidden layer: h is the input
            return dh
        return self._mlp_backward(dh, trunk, trunk_caches, grads, need_dinput=need_dinput)

    def _ordered(self, grads):
        return {name: grads[name] for name in self.params}

    # ------------------------------------------------------------------------ the loss

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0, fused=False):
        """The negative ELBO (or IWAE bound), in nats per example, and its gradient.

        Parameters
        ----------
        x : (B, D) array.
        eps : (B, Z) or (K, B, Z) array of standard normal noise, or None to draw (k, B, Z)
            (or (B, Z) when k = 1) from ``rng``, else from the model's own generator.
        beta : float ≥ 0, the weight of the KL (beta-VAE; 0 during a KL warm-up's first step).
        objective : "elbo", or "iwae" for the importance-weighted bound with the K samples.
        k : int, samples per example when eps is drawn.
        free_bits : float λ ≥ 0. When positive, the KL term is Σ_Z max(λ, KL_Z), with KL_Z the
            batch mean of the KL of latent dimension Z (``distributions.free_bits_kl``).
        fused : bool, the one switch between the textbook kernels (False: what a reader meets)
            and their fast twins (True: ``distributions.bernoulli_nll_fused``); same numbers.

        Returns
        -------
        loss : float, mean over the batch of [NLL(x|z) + beta · KL] (NLL averaged over K).
        grads : dict with exactly the keys of ``params``, each ∂loss/∂param.
        stats : dict of floats: "loss", "recon" (mean NLL), "kl" (mean closed-form KL).
        """
        return self._loss_and_grads(x, None, eps, beta, rng, objective, k, free_bits, fused)

    def _loss_and_grads(self, x, cond, eps, beta, rng, objective, k, free_bits, fused):
        """``loss_and_grads`` with the condition cond : (B, C) or None; checks and dispatches."""
        x, eps = self._inputs(x, eps, rng, k)
        beta, free_bits = checks.nonnegative(beta, "beta"), checks.nonnegative(free_bits,
                                                                                "free_bits")
        if objective == "elbo":
            return self._elbo_loss_and_grads(x, cond, eps, beta, free_bits, fused)
        if objective != "iwae":
            raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}.")
        if beta != 1.0 or free_bits:
            raise ValueError("the IWAE bound has no beta or free bits; use objective='elbo'.")
        return self._iwae_loss_and_grads(x, cond, eps, fused)

    def _elbo_loss_and_grads(self, x, cond, eps, beta, free_bits, fused):
        """The negative ELBO with K = 1 or more samples of z per example, and its gradient.

        loss = (1/(K·B)) Σ_kb NLL(x_b | z_kb) + beta · KL_term,
        KL_term = (1/B) Σ_b KL_b (closed form), or with free bits Σ_Z max(λ, KL_Z).
        """
        mu, logvar, encoder_cache = self._encode_forward(x, cond)  # q(z|x): (B, Z) each
        grads = {}
        # Steps 1 to 4, from the loss back to mu and logvar (and to the decoder's weights).
        loss, stats, dmu, dlogvar = self._elbo_given_q(x, cond, mu, logvar, eps, beta,
                                                       free_bits, fused, grads)
        # 5. Encoder: the two heads (the logvar head through its clamp) meet at the trunk's
        #    output h, where their gradients add; then back through the trunk to every weight.
        self._encode_backward(dmu, dlogvar, encoder_cache, grads)
        return loss, self._ordered(grads), stats

    def _elbo_given_q(self, x, cond, mu, logvar, eps, beta, free_bits, fused, grads):
        """Steps 1 to 4 of the negative ELBO's backward, for q = N(mu, diag e^logvar) given:
        (loss, stats, dmu, dlogvar), dmu and dlogvar (B, Z); the decoder's gradients go into
        ``grads``. The encoder computes mu and logvar in ``_elbo_loss_and_grads``; per-example
        variational parameters come here directly (``npvae.study.inference.optimize_q``)."""
        B, K = x.shape[0], (eps.shape[0] if eps.ndim == 3 else 1)
        # ---------------------------------------------------------------- forward
        fwd = self._forward_given_q(x, cond, mu, logvar, eps, fused=fused)
        kl, dmu_kl, dlogvar_kl = kl_standard_normal(fwd.mu, fwd.logvar)  # (B,), (B, Z) × 2
        recon = fwd.nll.mean()  # mean over K and B
        if free_bits:
            kl_term, trained = free_bits_kl(fwd.mu, fwd.logvar, free_bits)  # float, (Z,)
        else:
            kl_term, trained = kl.mean(), True
        loss = recon + beta * kl_term

        # ---------------------------------------------------------------- backward
        # 1. Output layer. recon = (1/(K·B)) Σ_kb NLL_kb; _nll gave each sample's ∂NLL/∂heads:
        #    Bernoulli  dlogits = (sigmoid(logits) - x) / (K·B)
        #    Gaussian   dmean   = (mean - x) / (σ² K·B)
        #    learned    dmean   = (mean - x) e^{-logvar_x} / (K·B),
        #               dlogvar_x = ½ [1 - (x - mean)² e^{-logvar_x}] / (K·B)
        scale = 1.0 / (K * B)
        dheads = [(d * scale).reshape(-1, d.shape[-1]) for d in fwd.dnll_dheads]  # (K·B, D)

        # 2. Decoder: back through the heads and the trunk to the samples, dz : (K, B, Z).
        dz = self._decode_backward(dheads, fwd.decoder_cache, grads).reshape(fwd.z.shape)

        # 3. Reparameterization z = mu + σ·eps, σ = exp(logvar / 2):
        #    dmu = Σ_K dz,   dlogvar = Σ_K dz · eps · σ / 2.
        dmu, dlogvar = reparameterize_backward(dz, fwd.sampler_cache)  # (B, Z) each

        # 4. KL = ½ Σ_Z (mu² + e^logvar - logvar - 1), averaged over B and weighted by beta:
        #    ∂/∂mu = beta · mu / B,   ∂/∂logvar = beta · (e^logvar - 1) / (2B).
        #    mu and logvar each feed two paths, the sampler and the KL: the gradients ADD here.
        #    With free bits, only the dimensions whose batch-mean KL exceeds λ pass a gradient.
        kl_scale = (beta / B) * np.asarray(trained, dtype=self.dtype)  # () or (Z,)
        dmu += kl_scale * dmu_kl
        dlogvar += kl_scale * dlogvar_kl
        stats = {"loss": float(loss), "recon": float(recon), "kl": float(kl.mean())}
        return float(loss), stats, dmu, dlogvar

    def _iwae_loss_and_grads(self, x, cond, eps, fused):
        """The importance-weighted bound (Burda et al. 2016) with the K samples of eps.

        log w_kb = log p(x_b|z_kb) + log p(z_kb) - log q(z_kb|x_b)    (no analytic KL inside)
        loss     = -(1/B) Σ_b log (1/K) Σ_k w_kb
        ∂loss/∂log w_kb = -w̃_kb / B,   w̃_kb = w_kb / Σ_k' w_k'b   (self-normalised weights),
        so each sample's gradient of -log w is weighted by w̃ / B. With K = 1, w̃ = 1 and this is
        the single-sample ELBO, with a sampled KL in place of the closed form.
        """
        if eps.ndim == 2:
            eps = eps[None]  # (1, B, Z)
        K, B, _ = eps.shape

        # ---------------------------------------------------------------- forward
        fwd = self._forward(x, cond, eps, fused=fused)
        log_pz, dlog_pz_dz = standard_normal_log_density(fwd.z)  # (K, B), (K, B, Z)
        log_qz, dlog_qz_dz, dlog_qz_dmu, dlog_qz_dlogvar = gaussian_log_density(
            fwd.z, fwd.mu, fwd.logvar)  # (K, B), then (K, B, Z) × 3
        log_w = -fwd.nll + log_pz - log_qz  # (K, B)
        log_mean_w = logsumexp(log_w, axis=0) - math.log(K)  # (B,)
        w_tilde = np.exp(log_w - logsumexp(log_w, axis=0))  # (K, B), Σ_K w̃ = 1
        loss = -log_mean_w.mean()

        # ---------------------------------------------------------------- backward
        grads = {}
        weight = (w_tilde / B)[..., None]  # (K, B, 1): ∂loss/∂(-log w) for each sample
        # 1. -log w contains +NLL: the decoder heads get weight · ∂NLL/∂heads.
        dheads = [(d * weight).reshape(-1, d.shape[-1]) for d in fwd.dnll_dheads]  # (K·B, D)
        # 2. Decoder to z; then -log w's other terms that depend on z:
        #    ∂(-log p(z))/∂z = z,   ∂(+log q(z|x))/∂z = -(z - mu) e^{-logvar}.
        dz = self._decode_backward(dheads, fwd.decoder_cache, grads).reshape(fwd.z.shape)
        dz += weight * (-dlog_pz_dz + dlog_qz_dz)  # (K, B, Z)
        # 3. Reparameterization, summing over the K samples.
        dmu, dlogvar = reparameterize_backward(dz, fwd.sampler_cache)  # (B, Z)
        # 4. log q(z|x) also depends on mu and logvar directly (with z held fixed); those paths
        #    add to the sampler's: ∂log q/∂mu = (z - mu) e^{-logvar},
        #    ∂log q/∂logvar = -½ [1 - (z - mu)² e^{-logvar}].
        dmu += (weight * dlog_qz_dmu).sum(axis=0)
        dlogvar += (weight * dlog_qz_dlogvar).sum(axis=0)
        # 5. Encoder.
        self._encode_backward(dmu, dlogvar, fwd.encoder_cache, grads)

        kl, _, _ = kl_standard_normal(fwd.mu, fwd.logvar)
        stats = {"loss": float(loss), "recon": float(fwd.nll.mean()), "kl": float(kl.mean())}
        return float(loss), self._ordered(grads), stats

    def _inputs(self, x, eps, rng, k):
        """Validate x (and eps), or draw eps ~ N(0, I) of shape (B, Z), or (k, B, Z) if k > 1."""
        x = checks.as_batch(x, self.input_dim, self.dtype,
                            unit_interval=self.config.likelihood == "bernoulli")
        B, Z = x.shape[0], self.noise_dim
        if eps is None:
            k = checks.positive_int(k, "k")
            rng = self.rng if rng is None else checks.as_generator(rng, "rng")
            eps = rng.standard_normal((B, Z) if k == 1 else (k, B, Z), dtype=self.dtype)
        return x, checks.as_eps(eps, B, Z, self.dtype)

    # ------------------------------------------------------------------------ inference

    def encode(self, x):
        """q(z|x): x : (B, D)  ->  (mu, logvar), each (B, Z)."""
        return self._encode(x, None)

    def _encode(self, x, cond):
        x = checks.as_batch(x, self.input_dim, self.dtype)
        mu, logvar, _ = self._encode_forward(x, cond)
        return mu, logvar

    def decode(self, z, draw=False, rng=None):
        """The mean of p(x|z): probabilities sigmoid(logits) for Bernoulli, else the Gaussian
        mean; with draw=True, a draw x ~ p(x|z) instead (``_draw_x``, noise from ``rng``).

        z : (N, Z)  ->  (N, D).
        """
        return self._decode(z, None, draw, rng)

    def _decode(self, z, cond, draw=False, rng=None):
        z = checks.as_batch(z, self.latent_dim, self.dtype, name="z")
        heads, _ = self._decode_forward(z, cond)
        mean = sigmoid(heads[0]) if self.config.likelihood == "bernoulli" else heads[0]
        return self._draw_x(mean, heads, rng) if draw else mean

    def _draw_x(self, mean, heads, rng):
        """x ~ p(x|z), one draw per row, given the decoder's mean and heads: (N, D).

        Bernoulli: x_d = 1 with probability mean_d, else 0.  Gaussian: x = mean + σ · noise.
        Learned variance: x = mean + exp(logvar_x / 2) · noise.  noise ~ N(0, I) from ``rng``.
        """
        rng = self.rng if rng is None else checks.as_generator(rng, "rng")
        if self.config.likelihood == "bernoulli":
            return (rng.random(mean.shape, dtype=self.dtype) < mean).astype(self.dtype)
        std = (self.config.sigma if self.config.likelihood == "gaussian"
               else np.exp(0.5 * heads[1]))  # σ, or (N, D)
        return mean + std * rng.standard_normal(mean.shape, dtype=self.dtype)

    def reconstruct(self, x):
        """The decoded mean at the posterior mean: decode(mu(x)), (B, D)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def sample(self, n, rng=None, draw=False):
        """Generation (Algorithm 2 of the source notes): z ~ p(z) = N(0, I), then x from p(x|z).

        draw=False returns the mean of p(x|z) at each z (for a Bernoulli decoder, the pixel
        probabilities): a picture of what the decoder expects, not a sample. draw=True returns
        x ~ p(x|z) itself: binary pixels, or the mean plus Gaussian noise of the decoder's
        variance. Both are (n, D); z and the draws come from ``rng`` (else the model's own).
        """
        rng = self.rng if rng is None else checks.as_generator(rng, "rng")
        z = self._prior_draws(checks.positive_int(n, "n"), rng)  # (n, Z)
        return self._decode(z, None, draw, rng)

    def _check_rows_fit(self, n):
        """Refuse n decoder rows at once if their arrays would not fit in memory."""
        width = self.input_dim + self.latent_dim + sum(self.config.hidden_dims)
        checks.check_fits(2 * n * width * self.dtype.itemsize, f"decoding {n:,} samples at once",
                          "ask for fewer (e.g. in batches)")

    def _prior_draws(self, n, rng):
        self._check_rows_fit(n)
        rng = self.rng if rng is None else checks.as_generator(rng, "rng")
        return rng.standard_normal((n, self.latent_dim), dtype=self.dtype)  # (n, Z)

    def log_weights(self, x, eps, fused=False):
        """log w = log p(x|z) + log p(z) - log q(z|x) for each sample: (K, B).

        The importance weights of log p(x) ≥ E_q log w; never the analytic KL inside.
        x : (B, D), eps : (K, B, Z).
        """
        return self._log_weights(x, None, eps, fused)

    def _log_weights(self, x, cond, eps, fused):
        x = checks.as_batch(x, self.input_dim, self.dtype,
                            unit_interval=self.config.likelihood == "bernoulli")
        eps = checks.as_eps(eps, x.shape[0], self.noise_dim, self.dtype)
        fwd = self._forward(x, cond, eps, need_grad=False, fused=fused)
        log_pz = standard_normal_log_density(fwd.z)[0]
        log_qz = gaussian_log_density(fwd.z, fwd.mu, fwd.logvar)[0]
        return -fwd.nll + log_pz - log_qz

    def prior_log_weights(self, x, z, fused=False):
        """log p(x|z) at draws z ~ p(z) from the prior: the weights of the naive estimator
        p(x) ≈ (1/K) Σ_k p(x|z_k), which needs no encoder. x : (B, D), z : (K, B, Z) -> (K, B)."""
        return self._prior_log_weights(x, None, z, fused)

    def _prior_log_weights(self, x, cond, z, fused):
        x = checks.as_batch(x, self.input_dim, self.dtype,
                            unit_interval=self.config.likelihood == "bernoulli")
        z = checks.as_eps(z, x.shape[0], self.latent_dim, self.dtype)  # (K, B, Z)
        return -self._decode_nll(x, cond, z, need_grad=False, fused=fused)[0]  # (K, B)

    def elbo_terms(self, x, eps, fused=False):
        """Per example, forward only, at one sample z = mu + σ·eps: the reconstruction term
        -log p(x|z) and the KL term KL(q(z|x) ‖ N(0, I)), (B,) each (``evaluate.elbo``).
        x : (B, D), eps : (B, Z)."""
        x, eps = self._inputs(x, eps, None, 1)
        return self._elbo_terms(x, None, eps, fused)

    def _elbo_terms(self, x, cond, eps, fused):
        fwd = self._forward(x, cond, eps, need_grad=False, fused=fused)
        return fwd.nll, kl_standard_normal(fwd.mu, fwd.logvar)[0]

    def nll(self, x, eps, fused=False):
        """-log p(x|z) at the samples z = mu + σ·eps, forward only: (B,) or (K, B).

        x : (B, D), eps : (B, Z) or (K, B, Z).
        """
        return self._nll_at(x, None, eps, fused)

    def _nll_at(self, x, cond, eps, fused):
        x, eps = self._inputs(x, eps, None, 1)
        return self._forward(x, cond, eps, need_grad=False, fused=fused).nll
