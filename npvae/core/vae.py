"""The variational autoencoder: the negative ELBO and its gradient, written out by hand.

    encoder   [x, cond] ─► [dense ─► act] × n ─► h_enc ─┬─► dense ─► mu                q(z|x) =
                                                       └─► dense ─► clamp ─► logvar     N(mu, diag e^logvar)
    sampler   z = mu + std · eps,   std = exp(logvar / 2),   eps ~ N(0, I)
    decoder   [z, cond] ─► [dense ─► act] × n ─► h_dec ─┬─► dense ─► logits or mean    p(x|z)
                                                       └─► dense ─► logvar_x  (gaussian-learned only)

    loss = (1/B) Σ_b [ (1/K) Σ_k NLL(x_b | z_kb) + beta · KL(q(z|x_b) ‖ N(0, I)) ]   (nats)

Read ``VAE.loss_and_grads`` first: one function, the forward as calls of the primitives
(``npvae.core.layers``, ``npvae.core.distributions``), then the backward, steps 1 to 5 from the
loss back to the encoder, each with its derivative. Beside it, not on its path: the importance-weighted
bound (``_iwae_loss_and_grads``), and the pieces that the IWAE bound, the evaluation methods
and the models built on the VAE (``npvae.models``) share.

Symbols (the same in every module; docs/reading.md#symbols): B batch, D data, H hidden, Z
latent, K samples of z per example (eps is (B, Z), or (K, B, Z) for K > 1), C classes of a
condition, N rows of a forward pass (B, K·B, or any number of z's). std is q's standard
deviation exp(logvar / 2); sigma is the fixed standard deviation of the "gaussian" likelihood;
sigmoid is the logistic function.

A condition (the CVAE's one-hot label) is an explicit input, ``cond`` (B, C): it is joined to x
where the encoder starts and to every sample z where the decoder starts. A plain VAE passes
None, which is joined as C = 0 columns.
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
    mlp_backward,
    mlp_forward,
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


def _thousands(value):
    """An int with thousands separators (1,000,000); any other value as it prints."""
    return f"{value:,}" if isinstance(value, int) else str(value)


def _is_int(value):
    """True for an integral number (3, np.int64(3), 3.0), False for 2.5, True/False or text."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and float(value).is_integer())


@dataclasses.dataclass
class Forward:
    """What ``VAE._forward`` computed, for the IWAE bound's backward (which scales the NLL
    gradients by w̃/B), the evaluation methods and the models built on the VAE.

    The NLL gradients are those of each sample's own sum over D, unscaled.
    """

    mu: np.ndarray  # (B, Z), the mean of q(z|x)
    logvar: np.ndarray  # (B, Z), its log-variance, after the clamp
    z: np.ndarray  # (B, Z) or (K, B, Z): z = mu + std · eps
    nll: np.ndarray  # (B,) or (K, B): -log p(x|z), summed over D
    dnll_dheads: list  # ∂NLL/∂head for each decoder head, each (K·B, D); or Nones
    encoder_cache: tuple  # ``_gaussian_forward``'s cache
    sampler_cache: tuple  # (std, eps)
    decoder_cache: tuple  # ``_decode_forward``'s cache


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
        self._depth = len(self.config.hidden_dims)  # hidden layers in each trunk
        # The decoder's output layers: "out" (logits or mean), and "out_logvar" (log-variance).
        self.decoder_heads = (("out", "out_logvar") if likelihood == "gaussian-learned"
                              else ("out",))
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

    @classmethod
    def shapes_of(cls, config):
        """(name, fan_in, fan_out, activation) of every dense layer of a model with this
        config, from the config alone (``layer_shapes``; checkpoints check files with it)."""
        return layer_shapes(config, getattr(config, "n_classes", 0), cls.encoder_heads)

    def _init_params(self, rng):
        shapes = self.shapes_of(self.config)
        n_params = sum((fan_in + 1) * fan_out for _, fan_in, fan_out, _ in shapes)
        extras = "".join(f", {k} = {_thousands(v)}" for k, v in self._config_extras().items())
        checks.check_fits(4 * n_params * self.dtype.itemsize,
                          f"training a {self._dims()} {type(self).__name__}{extras}"
                          f" ({n_params:.3g} parameters, each with "
                          f"a gradient and Adam's two moments)", "choose smaller layers")
        params = {}
        for name, fan_in, fan_out, act in shapes:
            params[f"{name}.W"], params[f"{name}.b"] = dense_init(fan_in, fan_out, act, rng,
                                                                  self.dtype)
        return params

    def _dims(self):
        """The architecture as "784-400-20"."""
        return "-".join(map(str, [self.input_dim, *self.config.hidden_dims, self.latent_dim]))

    def __repr__(self):
        cfg = self.config
        n_params = sum(p.size for p in self.params.values())
        extras = "".join(f", {k}={v}" for k, v in self._config_extras().items())
        sigma = f", sigma={cfg.sigma:g}" if cfg.likelihood == "gaussian" else ""
        return (f"{type(self).__name__}({self._dims()}{extras}, {cfg.likelihood}{sigma}, "
                f"{cfg.activation}, {cfg.dtype}, {n_params:,} parameters)")

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

    # ------------------------------------------------------------------------ the loss

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0, cond=None):
        """The negative ELBO (or IWAE bound), in nats per example, and its gradient.

        x : (B, D). eps : (B, Z) or (K, B, Z) standard normal noise, or None to draw it, (k, B, Z)
        or (B, Z) if k = 1, from ``rng`` (else the model's own generator). beta : the KL's weight
        ≥ 0. objective : "elbo", or "iwae" for the importance-weighted bound over the K samples
        (``_iwae_loss_and_grads``). free_bits : λ ≥ 0; if positive the KL term is
        Σ_j max(λ, KL_j) (``distributions.free_bits_kl``). cond : (B, C), joined to x and to z
        (a CVAE's one-hot labels), or None. Returns the loss (float), grads (∂loss/∂param for
        each key of ``params``), stats ("loss", "recon": mean NLL, "kl": mean closed-form KL)."""
        cfg = self.config
        x = checks.as_batch(x, cfg.input_dim, self.dtype,
                            unit_interval=cfg.likelihood == "bernoulli")
        eps = checks.as_eps(eps, len(x), cfg.latent_dim, self.dtype, k, rng, self.rng)
        beta, free_bits = checks.nonnegative(beta, "beta"), checks.nonnegative(free_bits,
                                                                                "free_bits")
        if objective != "elbo":  # the importance-weighted bound: its own function, below
            return self._iwae_loss_and_grads(x, eps, beta, free_bits, objective, cond)
        p, (B, D), Z = self.params, x.shape, cfg.latent_dim
        cond = checks.as_cond(cond, B, self.cond_dim, self.dtype)  # (B, C); C = 0: no label
        # ---------------------------------------------------------------- forward
        # q(z|x): the encoder's trunk, then two heads on its last hidden layer h_enc.
        x_in = np.concatenate([x, cond], axis=1)  # (B, D + C)
        h_enc, enc_caches = mlp_forward(x_in, p, "encoder", self._depth, self._act_forward)
        mu, mu_cache = dense_forward(h_enc, p["mu.W"], p["mu.b"])  # (B, Z)
        logvar_raw, lv_cache = dense_forward(h_enc, p["logvar.W"], p["logvar.b"])  # (B, Z)
        logvar, inside = clamp_forward(logvar_raw, LOGVAR_MIN, LOGVAR_MAX)  # (B, Z)
        z, sampler_cache = reparameterize_forward(mu, logvar, eps)  # (K, B, Z) or (B, Z) samples
        K = z.size // mu.size
        z_rows = z.reshape(K * B, Z)  # (K·B, Z): row k·B + b is sample k of x_b
        z_in = np.concatenate([z_rows, np.tile(cond, (K, 1))], axis=1)  # (K·B, Z + C)
        x_rows = np.broadcast_to(x, (K, B, D)).reshape(K * B, D)  # (K·B, D): x_b for each
        # p(x|z): the decoder's trunk, its heads, and the negative log-likelihood.
        h_dec, dec_caches = mlp_forward(z_in, p, "decoder", self._depth, self._act_forward)
        heads, head_caches = [], []
        for name in self.decoder_heads:  # "out": logits or mean; "out_logvar": log-variance
            head, head_cache = dense_forward(h_dec, p[f"{name}.W"], p[f"{name}.b"])  # (K·B, D)
            heads.append(head)
            head_caches.append(head_cache)
        nll, dnll_dheads = self._nll(heads, x_rows)  # (K·B,), each ∂NLL_kb/∂head (K·B, D)
        kl, dkl_dmu, dkl_dlogvar = kl_standard_normal(mu, logvar)  # (B,), (B, Z), (B, Z)
        kl_term = kl.mean()  # (1/B) Σ_b KL_b
        kl_scale = beta / B  # ∂(beta · kl_term)/∂KL_b
        if free_bits:  # Σ_j max(λ, KL_j): dimensions under the floor λ get no KL gradient
            kl_term, trained = free_bits_kl(mu, logvar, free_bits)  # float, (Z,) bool
            kl_scale = kl_scale * trained  # (Z,)
        recon = nll.mean()  # (1/(K·B)) Σ_kb NLL_kb
        loss = recon + beta * kl_term
        # ---------------------------------------------------------------- backward
        grads = dict.fromkeys(p)  # ∂loss/∂param for every parameter, filled in below
        # 1. Output layer: recon = (1/(K·B)) Σ_kb NLL_kb, so each head's gradient is its NLL_kb's
        #    times 1/(K·B), applied here only: Bernoulli dlogits = (sigmoid(logits) - x) / (K·B)
        #    (the others: VAE._nll); then each head's dense layer, dW = h_decᵀ dhead.
        scale = 1.0 / (K * B)
        dh_dec = 0
        for name, dnll_dhead, head_cache in zip(self.decoder_heads, dnll_dheads, head_caches):
            dh_head, grads[f"{name}.W"], grads[f"{name}.b"] = dense_backward(
                dnll_dhead * scale, head_cache)  # (K·B, H)
            dh_dec = dh_dec + dh_head  # h_dec feeds every head: their gradients add
        # 2. Decoder trunk, back to [z, cond]; the condition is data: its columns are dropped.
        dz_in = mlp_backward(dh_dec, dec_caches, grads, "decoder", self._act_backward)
        dz = dz_in[:, :Z].reshape(z.shape)  # (K, B, Z) or (B, Z)
        # 3. Sampler, z = mu + std · eps: dmu = Σ_K dz, dlogvar = Σ_K dz · eps · std / 2.
        dmu, dlogvar = reparameterize_backward(dz, sampler_cache)  # (B, Z) each
        # 4. KL = ½ Σ_Z (mu² + e^logvar - logvar - 1), times kl_scale: ∂/∂mu = mu, ∂/∂logvar =
        #    ½ (e^logvar - 1). mu, logvar feed the sampler and the KL: the gradients ADD here.
        dmu += kl_scale * dkl_dmu
        dlogvar += kl_scale * dkl_dlogvar
        # 5. Encoder: the logvar head's clamp (0 where it binds), both heads' dense layers (their
        #    gradients add at h_enc), the trunk to every weight; ∂L/∂x is not needed.
        dlogvar_raw = clamp_backward(dlogvar, inside)  # (B, Z)
        dh_enc, grads["mu.W"], grads["mu.b"] = dense_backward(dmu, mu_cache)  # (B, H)
        dh_logvar, grads["logvar.W"], grads["logvar.b"] = dense_backward(dlogvar_raw, lv_cache)
        dh_enc += dh_logvar  # h_enc feeds both heads: their gradients add
        mlp_backward(dh_enc, enc_caches, grads, "encoder", self._act_backward, need_dinput=False)

        stats = {"loss": float(loss), "recon": float(recon), "kl": float(kl.mean())}
        return float(loss), grads, stats

    def _nll(self, heads, x, need_grad=True):
        """The likelihood's terminal node: -log p(x|z) per row, (N,), and its gradient with
        respect to each decoder head, each (N, D) (Nones with ``need_grad=False``).

        heads : [logits] (Bernoulli), [mean] (Gaussian, fixed sigma) or [mean, logvar_x]
        (learned variance), each (N, D); x : (N, D). The learned log-variance is clamped to
        [LOGVAR_MIN, LOGVAR_MAX] here, and its gradient is 0 where the clamp binds.
        """
        likelihood = self.config.likelihood
        if likelihood == "bernoulli":
            nll, dlogits = bernoulli_nll(heads[0], x, need_grad)
            return nll, [dlogits]
        if likelihood == "gaussian":
            nll, dmean = gaussian_nll(heads[0], x, self.config.sigma, need_grad)
            return nll, [dmean]
        logvar_x, inside = clamp_forward(heads[1], LOGVAR_MIN, LOGVAR_MAX)  # (N, D)
        nll, dmean, dlogvar_x = gaussian_nll_learned(heads[0], logvar_x, x, need_grad)
        return nll, [dmean, None if dlogvar_x is None else clamp_backward(dlogvar_x, inside)]

    # ------------------------------------------------------------------------ IWAE, beside it

    def _iwae_loss_and_grads(self, x, eps, beta, free_bits, objective, cond):
        """The importance-weighted bound (Burda et al. 2016) with the K samples of eps.

        log w_kb = log p(x_b|z_kb) + log p(z_kb) - log q(z_kb|x_b)    (no analytic KL inside)
        loss     = -(1/B) Σ_b log (1/K) Σ_k w_kb
        ∂loss/∂log w_kb = -w̃_kb / B,   w̃_kb = w_kb / Σ_k' w_k'b   (self-normalised weights),
        so each sample's gradient of -log w is weighted by w̃ / B. With K = 1, w̃ = 1 and this is
        the single-sample ELBO, with a sampled KL in place of the closed form.
        """
        if objective != "iwae":
            raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}.")
        if beta != 1.0 or free_bits:
            raise ValueError("the IWAE bound has no beta or free bits; use objective='elbo'.")
        eps = eps if eps.ndim == 3 else eps[None]  # (K, B, Z)
        K, B, _ = eps.shape

        # ---------------------------------------------------------------- forward
        fwd = self._forward(x, eps, cond)
        log_pz, dlog_pz_dz = standard_normal_log_density(fwd.z)  # (K, B), (K, B, Z)
        log_qz, dlog_qz_dz, dlog_qz_dmu, dlog_qz_dlogvar = gaussian_log_density(
            fwd.z, fwd.mu, fwd.logvar)  # (K, B), then (K, B, Z) × 3
        log_w = -fwd.nll + log_pz - log_qz  # (K, B)
        log_sum_w = logsumexp(log_w, axis=0)  # (B,)
        w_tilde = np.exp(log_w - log_sum_w)  # (K, B), Σ_K w̃ = 1
        loss = -(log_sum_w - math.log(K)).mean()

        # ---------------------------------------------------------------- backward
        grads = {}
        weight = (w_tilde / B)[..., None]  # (K, B, 1): ∂loss/∂(-log w) for each sample
        # 1. -log w contains +NLL: the decoder heads get weight · ∂NLL/∂heads.
        row_weight = weight.reshape(K * B, 1)  # (K·B, 1)
        dheads = [d * row_weight for d in fwd.dnll_dheads]  # each (K·B, D)
        # 2. Decoder to z; then -log w's other terms that depend on z:
        #    ∂(-log p(z))/∂z = z,   ∂(+log q(z|x))/∂z = -(z - mu) e^{-logvar}.
        dz = self._decode_backward(dheads, fwd.decoder_cache, grads).reshape(fwd.z.shape)
        dz += weight * (-dlog_pz_dz + dlog_qz_dz)  # (K, B, Z)
        # 3. Sampler, summing over the K samples.
        dmu, dlogvar = reparameterize_backward(dz, fwd.sampler_cache)  # (B, Z)
        # 4. log q(z|x) also depends on mu and logvar directly (with z held fixed): the score
        #    of q. Those paths add to the sampler's:
        #    ∂log q/∂mu = (z - mu) e^{-logvar},  ∂log q/∂logvar = -½ [1 - (z - mu)² e^{-logvar}].
        dmu += (weight * dlog_qz_dmu).sum(axis=0)
        dlogvar += (weight * dlog_qz_dlogvar).sum(axis=0)
        # 5. Encoder.
        self._gaussian_backward(dmu, dlogvar, fwd.encoder_cache, grads, "encoder", "mu",
                                "logvar", need_dinput=False)

        kl, _, _ = kl_standard_normal(fwd.mu, fwd.logvar)
        stats = {"loss": float(loss), "recon": float(fwd.nll.mean()), "kl": float(kl.mean())}
        return float(loss), {name: grads[name] for name in self.params}, stats

    # ------------------------------------------------------------------------ shared pieces
    # The loss above calls the primitives itself. The IWAE bound, the evaluation methods and
    # the models built on the VAE (npvae.models) compose the same primitives through these.

    def _gaussian_forward(self, inputs, trunk, mu_name, logvar_name):
        """A diagonal Gaussian computed by an MLP with two heads, as the encoder of the loss:

            inputs ─► [dense ─► act] × n ─► h ─┬─► dense ─► mu
                                               └─► dense ─► clamp ─► logvar

        inputs : (N, ·)  ->  mu, logvar : (N, ·), and the cache. The VAE's encoder is one
        ("encoder", "mu", "logvar"); a hierarchical VAE has three (``npvae.models.hvae``)."""
        p = self.params
        h, trunk_caches = mlp_forward(inputs, p, trunk, self._depth, self._act_forward)
        mu, mu_cache = dense_forward(h, p[f"{mu_name}.W"], p[f"{mu_name}.b"])  # (N, ·)
        raw, raw_cache = dense_forward(h, p[f"{logvar_name}.W"], p[f"{logvar_name}.b"])
        logvar, inside = clamp_forward(raw, LOGVAR_MIN, LOGVAR_MAX)  # (N, ·)
        return mu, logvar, (trunk_caches, mu_cache, raw_cache, inside)

    def _gaussian_backward(self, dmu, dlogvar, cache, grads, trunk, mu_name, logvar_name,
                           need_dinput=True):
        """Backward of ``_gaussian_forward`` (step 5 of the loss): dmu, dlogvar : (N, ·)  ->
        d(inputs) (N, ·), or None with ``need_dinput=False``."""
        trunk_caches, mu_cache, raw_cache, inside = cache
        dh, grads[f"{mu_name}.W"], grads[f"{mu_name}.b"] = dense_backward(dmu, mu_cache)
        dh_logvar, grads[f"{logvar_name}.W"], grads[f"{logvar_name}.b"] = dense_backward(
            clamp_backward(dlogvar, inside), raw_cache)
        dh += dh_logvar  # h feeds both heads: their gradients add
        return mlp_backward(dh, trunk_caches, grads, trunk, self._act_backward, need_dinput)

    def _decode_forward(self, z_in):
        """The decoder's heads at z_in = [z, cond] : (N, Z + C): a list of (N, D) arrays
        ([logits], [mean] or [mean, logvar_x]), and the cache."""
        p = self.params
        h, trunk_caches = mlp_forward(z_in, p, "decoder", self._depth, self._act_forward)
        heads, head_caches = [], []
        for name in self.decoder_heads:
            head, head_cache = dense_forward(h, p[f"{name}.W"], p[f"{name}.b"])  # (N, D)
            heads.append(head)
            head_caches.append(head_cache)
        return heads, (trunk_caches, head_caches)

    def _decode_backward(self, dheads, cache, grads):
        """Backward of ``_decode_forward`` (steps 1-2 of the loss, with the heads' gradients
        already scaled): dheads, each (N, D)  ->  dz : (N, Z), the condition's columns dropped."""
        trunk_caches, head_caches = cache
        dh = 0
        for name, dhead, head_cache in zip(self.decoder_heads, dheads, head_caches):
            dh_head, grads[f"{name}.W"], grads[f"{name}.b"] = dense_backward(dhead, head_cache)
            dh = dh + dh_head  # h feeds every head: their gradients add
        dz_in = mlp_backward(dh, trunk_caches, grads, "decoder", self._act_backward)
        return dz_in[:, :self.latent_dim]

    def _cond(self, cond, n):
        """The condition as an (n, C) array: ``cond`` checked, or C = 0 columns for None."""
        return checks.as_cond(cond, n, self.cond_dim, self.dtype)

    def _forward(self, x, eps, cond=None, need_grad=True):
        """The loss's forward for the IWAE bound and the evaluation methods: q(z|x), the
        samples z, the decoder's heads on them, and the NLL (``Forward``)."""
        B = x.shape[0]
        cond = self._cond(cond, B)  # (B, C)
        mu, logvar, encoder_cache = self._gaussian_forward(
            np.concatenate([x, cond], axis=1), "encoder", "mu", "logvar")  # (B, Z) each
        z, sampler_cache = reparameterize_forward(mu, logvar, eps)  # (K, B, Z) or (B, Z)
        nll, dnll_dheads, decoder_cache = self._decode_nll(x, z, cond, need_grad)
        return Forward(mu, logvar, z, nll, dnll_dheads, encoder_cache, sampler_cache,
                       decoder_cache)

    def _decode_nll(self, x, z, cond, need_grad=True):
        """-log p(x|z) at samples z (K, B, Z) or (B, Z): (K, B) or (B,); the gradients with
        respect to the decoder heads, each (K·B, D); and the decoder's cache."""
        B, D = x.shape
        K = z.size // (B * self.latent_dim)
        z_in = np.concatenate([z.reshape(K * B, -1), np.tile(cond, (K, 1))], axis=1)
        heads, decoder_cache = self._decode_forward(z_in)  # each (K·B, D)
        x_rows = np.broadcast_to(x, (K, B, D)).reshape(K * B, D)
        nll, dnll_dheads = self._nll(heads, x_rows, need_grad)  # (K·B,)
        return nll.reshape(z.shape[:-1]), dnll_dheads, decoder_cache

    # ------------------------------------------------------------------------ inference

    def _check_x(self, x, name="x"):
        return checks.as_batch(x, self.input_dim, self.dtype, name=name,
                               unit_interval=self.config.likelihood == "bernoulli")

    def encode(self, x, cond=None):
        """q(z|x): x : (B, D)  ->  (mu, logvar), each (B, Z)."""
        x = checks.as_batch(x, self.input_dim, self.dtype)
        x_in = np.concatenate([x, self._cond(cond, len(x))], axis=1)  # (B, D + C)
        mu, logvar, _ = self._gaussian_forward(x_in, "encoder", "mu", "logvar")
        return mu, logvar

    def decode(self, z, draw=False, rng=None, cond=None):
        """The mean of p(x|z): probabilities sigmoid(logits) for Bernoulli, else the Gaussian
        mean; with draw=True, a draw x ~ p(x|z) instead (``_draw_x``, noise from ``rng``).

        z : (N, Z)  ->  (N, D).
        """
        z = checks.as_batch(z, self.latent_dim, self.dtype, name="z")
        heads, _ = self._decode_forward(np.concatenate([z, self._cond(cond, len(z))], axis=1))
        mean = sigmoid(heads[0]) if self.config.likelihood == "bernoulli" else heads[0]
        return self._draw_x(mean, heads, rng) if draw else mean

    def _draw_x(self, mean, heads, rng):
        """x ~ p(x|z), one draw per row, given the decoder's mean and heads: (N, D).

        Bernoulli: x_d = 1 with probability mean_d, else 0.  Gaussian: x = mean + sigma · noise.
        Learned variance: x = mean + exp(logvar_x / 2) · noise.  noise ~ N(0, I) from ``rng``.
        """
        rng = self.rng if rng is None else checks.as_generator(rng, "rng")
        if self.config.likelihood == "bernoulli":
            return (rng.random(mean.shape, dtype=self.dtype) < mean).astype(self.dtype)
        std = (self.config.sigma if self.config.likelihood == "gaussian"
               else np.exp(0.5 * np.clip(heads[1], LOGVAR_MIN, LOGVAR_MAX)))  # sigma, or (N, D)
        return mean + std * rng.standard_normal(mean.shape, dtype=self.dtype)

    def reconstruct(self, x, cond=None):
        """The decoded mean at the posterior mean: decode(mu(x)), (B, D)."""
        mu, _ = self.encode(x, cond=cond)
        return self.decode(mu, cond=cond)

    def sample(self, n, rng=None, draw=False, cond=None):
        """Generation (Algorithm 2 of the source notes): z ~ p(z) = N(0, I), then x from p(x|z).

        draw=False returns the mean of p(x|z) at each z (for a Bernoulli decoder, the pixel
        probabilities): a picture of what the decoder expects, not a sample. draw=True returns
        x ~ p(x|z) itself: binary pixels, or the mean plus Gaussian noise of the decoder's
        variance. Both are (n, D); z and the draws come from ``rng`` (else the model's own).
        """
        rng = self.rng if rng is None else checks.as_generator(rng, "rng")
        z = self._prior_draws(checks.positive_int(n, "n"), rng)  # (n, Z)
        return self.decode(z, draw, rng, cond=cond)

    def _check_rows_fit(self, n):
        """Refuse n decoder rows at once if their arrays would not fit in memory."""
        width = self.input_dim + self.latent_dim + sum(self.config.hidden_dims)
        checks.check_fits(2 * n * width * self.dtype.itemsize,
                          f"decoding {n:,} samples at once", "ask for fewer (e.g. in batches)")

    def _prior_draws(self, n, rng):
        self._check_rows_fit(n)
        return rng.standard_normal((n, self.latent_dim), dtype=self.dtype)  # (n, Z)

    # ------------------------------------------------------------------------ evaluation

    def log_weights(self, x, eps, cond=None):
        """log w = log p(x|z) + log p(z) - log q(z|x) for each sample: (K, B).

        The importance weights of log p(x) ≥ E_q log w; never the analytic KL inside.
        x : (B, D), eps : (K, B, Z).
        """
        x = self._check_x(x)
        eps = checks.as_eps(eps, x.shape[0], self.noise_dim, self.dtype)
        fwd = self._forward(x, eps, cond, need_grad=False)
        log_pz = standard_normal_log_density(fwd.z)[0]
        log_qz = gaussian_log_density(fwd.z, fwd.mu, fwd.logvar)[0]
        return -fwd.nll + log_pz - log_qz

    def prior_log_weights(self, x, z, cond=None):
        """log p(x|z) at draws z ~ p(z) from the prior: the weights of the naive estimator
        p(x) ≈ (1/K) Σ_k p(x|z_k), which needs no encoder. x : (B, D), z : (K, B, Z) -> (K, B)."""
        x = self._check_x(x)
        z = checks.as_eps(z, x.shape[0], self.latent_dim, self.dtype)  # (K, B, Z)
        return -self._decode_nll(x, z, self._cond(cond, len(x)), need_grad=False)[0]

    def elbo_terms(self, x, eps, cond=None):
        """Per example, forward only, at one sample z = mu + std·eps: the reconstruction term
        -log p(x|z) and the KL term KL(q(z|x) ‖ N(0, I)), (B,) each (``evaluate.elbo``).
        x : (B, D), eps : (B, Z)."""
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.noise_dim, self.dtype)
        fwd = self._forward(x, eps, cond, need_grad=False)
        return fwd.nll, kl_standard_normal(fwd.mu, fwd.logvar)[0]

    def nll(self, x, eps, cond=None):
        """-log p(x|z) at the samples z = mu + std·eps, forward only: (B,) or (K, B).

        x : (B, D), eps : (B, Z) or (K, B, Z).
        """
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.noise_dim, self.dtype)
        return self._forward(x, eps, cond, need_grad=False).nll
