"""The variational autoencoder: forward pass, negative ELBO, and its backward written out by hand.

    encoder   x ─► [dense ─► act] × n ─► h ─┬─► dense ─► mu                      q(z|x) =
                                            └─► dense ─► clamp ─► logvar           N(mu, diag e^logvar)
    sampler   z = mu + exp(logvar / 2) · eps,   eps ~ N(0, I)
    decoder   z ─► [dense ─► act] × n ─► h ─┬─► dense ─► logits or mean          p(x|z)
                                            └─► dense ─► clamp ─► logvar_x  (gaussian-learned only)

    loss = (1/B) Σ_b [ NLL(x_b | z_b) + beta · KL(q(z|x_b) ‖ N(0, I)) ]      (nats per example)

Shapes: B batch, D input, H hidden, Z latent, L samples per example (eps is (B, Z) or (L, B, Z)).
The backward of the whole model is in ``VAE.loss_and_grads``, step by step, in reverse order of
the forward; ``npvae.gradcheck`` proves each step against finite differences.
"""

import dataclasses
import math

import numpy as np

from . import checks
from .distributions import (
    bernoulli_nll,
    gaussian_log_density,
    gaussian_nll,
    gaussian_nll_learned,
    kl_per_dimension,
    kl_standard_normal,
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
    hidden_dims: tuple = (400,)
    latent_dim: int = 20
    likelihood: str = "bernoulli"
    activation: str = "relu"
    sigma: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        for name, value in [("input_dim", self.input_dim), ("latent_dim", self.latent_dim)]:
            if int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
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
    activation : one of ``npvae.layers.ACTIVATIONS``.
    sigma : float, the fixed standard deviation of the "gaussian" likelihood.
    dtype : np.float32 (training) or np.float64 (gradient checks).
    seed : int, Generator or None, seeds the initialisation and the model's own generator, which
        draws eps when none is given.
    """

    def __init__(self, input_dim, hidden_dims=(400,), latent_dim=20, likelihood="bernoulli",
                 activation="relu", sigma=1.0, dtype=np.float32, seed=None):
        self.config = VAEConfig(input_dim, tuple(hidden_dims), latent_dim, likelihood,
                                activation, float(sigma), np.dtype(dtype).name)
        self.dtype = np.dtype(self.config.dtype)
        self.rng = np.random.default_rng(seed)
        self._act_forward, self._act_backward = ACTIVATIONS[activation]
        self.params = self._init_params(self.rng)

    @classmethod
    def from_config(cls, config, seed=None):
        """Build a model from a VAEConfig or its dict."""
        if not isinstance(config, VAEConfig):
            config = VAEConfig(**config)
        return cls(**dataclasses.asdict(config), seed=seed)

    # ------------------------------------------------------------------------ parameters

    def _layer_shapes(self):
        """(name, fan_in, fan_out, activation that follows) for every dense layer, in order."""
        c = self.config
        act = c.activation
        enc = (c.input_dim, *c.hidden_dims)  # D, H1, ..., Hn
        dec = (c.latent_dim, *reversed(c.hidden_dims))  # Z, Hn, ..., H1
        shapes = [(f"encoder.{i}", enc[i], enc[i + 1], act) for i in range(len(enc) - 1)]
        shapes += [("mu", enc[-1], c.latent_dim, "identity"),
                   ("logvar", enc[-1], c.latent_dim, "identity")]
        shapes += [(f"decoder.{i}", dec[i], dec[i + 1], act) for i in range(len(dec) - 1)]
        shapes += [("out", dec[-1], c.input_dim, "identity")]
        if c.likelihood == "gaussian-learned":
            shapes += [("out_logvar", dec[-1], c.input_dim, "identity")]
        return shapes

    def _init_params(self, rng):
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

    # ------------------------------------------------------------------------ forward pieces

    def _dense(self, name, h):
        return dense_forward(h, self.params[f"{name}.W"], self.params[f"{name}.b"])

    def _mlp_forward(self, h, prefix):
        """h ─► [dense ─► act] for each hidden layer of the encoder or decoder trunk."""
        caches = []
        for i in range(len(self.config.hidden_dims)):
            h, dense_cache = self._dense(f"{prefix}.{i}", h)  # (N, H)
            h, act_cache = self._act_forward(h)  # (N, H)
            caches.append((dense_cache, act_cache))
        return h, caches

    def _mlp_backward(self, dh, prefix, caches, grads, need_dx=True):
        """Backward through the trunk: act, then dense, last layer first. Returns d(input)."""
        for i in reversed(range(len(caches))):
            dense_cache, act_cache = caches[i]
            dh = self._act_backward(dh, act_cache)
            dh, grads[f"{prefix}.{i}.W"], grads[f"{prefix}.{i}.b"] = dense_backward(
                dh, dense_cache, need_dx=need_dx or i > 0)
        return dh

    def _encode_forward(self, x):
        h, trunk = self._mlp_forward(x, "encoder")  # (B, H)
        mu, mu_cache = self._dense("mu", h)  # (B, Z)
        raw, lv_cache = self._dense("logvar", h)  # (B, Z)
        logvar, clamp_cache = clamp_forward(raw, LOGVAR_MIN, LOGVAR_MAX)  # (B, Z)
        return mu, logvar, (trunk, mu_cache, lv_cache, clamp_cache)

    def _decode_forward(self, z):
        """z : (N, Z)  ->  heads: (logits,) or (mean,) or (mean, logvar_x), each (N, D)."""
        h, trunk = self._mlp_forward(z, "decoder")  # (N, H)
        out, out_cache = self._dense("out", h)  # (N, D)
        if self.config.likelihood != "gaussian-learned":
            return (out,), (trunk, out_cache, None)
        raw, lv_cache = self._dense("out_logvar", h)  # (N, D)
        logvar_x, clamp_cache = clamp_forward(raw, LOGVAR_MIN, LOGVAR_MAX)
        return (out, logvar_x), (trunk, out_cache, (lv_cache, clamp_cache))

    def _nll(self, heads, x, need_grad=True):
        """-log p(x|z) per sample, (...,), and its gradient with respect to each head.

        With ``need_grad=False`` (evaluation) the gradients are not computed: each is None.
        """
        lik = self.config.likelihood
        if lik == "bernoulli":
            nll, dlogits = bernoulli_nll(heads[0], x, need_grad)
            return nll, (dlogits,)
        if lik == "gaussian":
            nll, dmean = gaussian_nll(heads[0], x, self.config.sigma, need_grad)
            return nll, (dmean,)
        nll, dmean, dlogvar_x = gaussian_nll_learned(heads[0], heads[1], x, need_grad)
        return nll, (dmean, dlogvar_x)

    def _forward(self, x, eps, need_grad=True):
        """The shared forward: q(z|x), the samples z, and the decoder heads on them."""
        mu, logvar, enc_cache = self._encode_forward(x)  # (B, Z) each
        z, rep_cache = reparameterize_forward(mu, logvar, eps)  # (L, B, Z) or (B, Z)
        heads, dec_cache = self._decode_forward(z.reshape(-1, self.latent_dim))  # (L·B, D)
        heads = tuple(a.reshape(*z.shape[:-1], -1) for a in heads)  # (L, B, D) or (B, D)
        nll, dheads = self._nll(heads, x, need_grad)  # (L, B) or (B,): x broadcasts over L
        return mu, logvar, z, nll, dheads, (enc_cache, rep_cache, dec_cache)

    # ------------------------------------------------------------------------ backward pieces

    def _decode_backward(self, dheads, cache, grads):
        """Heads ─► decoder trunk. dheads : each (N, D)  ->  dz : (N, Z)."""
        trunk, out_cache, lv_caches = cache
        dh, grads["out.W"], grads["out.b"] = dense_backward(dheads[0], out_cache)
        if lv_caches is not None:
            lv_cache, clamp_cache = lv_caches
            draw = clamp_backward(dheads[1], clamp_cache)
            dh_lv, grads["out_logvar.W"], grads["out_logvar.b"] = dense_backward(draw, lv_cache)
            dh += dh_lv  # h feeds both heads: their gradients add
        return self._mlp_backward(dh, "decoder", trunk, grads)

    def _encode_backward(self, dmu, dlogvar, cache, grads):
        """Heads ─► encoder trunk. dmu, dlogvar : (B, Z). ∂L/∂x is not needed, so not computed."""
        trunk, mu_cache, lv_cache, clamp_cache = cache
        draw = clamp_backward(dlogvar, clamp_cache)  # (B, Z)
        dh, grads["mu.W"], grads["mu.b"] = dense_backward(dmu, mu_cache, need_dx=bool(trunk))
        dh_lv, grads["logvar.W"], grads["logvar.b"] = dense_backward(draw, lv_cache,
                                                                     need_dx=bool(trunk))
        if trunk:
            dh += dh_lv  # h feeds both heads: their gradients add  (B, H)
            self._mlp_backward(dh, "encoder", trunk, grads, need_dx=False)

    def _ordered(self, grads):
        return {name: grads[name] for name in self.params}

    # ------------------------------------------------------------------------ the loss

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0):
        """The negative ELBO (or IWAE bound), in nats per example, and its gradient.

        Parameters
        ----------
        x : (B, D) array.
        eps : (B, Z) or (L, B, Z) array of standard normal noise, or None to draw (k, B, Z)
            (or (B, Z) when k = 1) from ``rng``, else from the model's own generator.
        beta : float, the weight of the KL (beta-VAE; 0 during a KL warm-up's first step).
        objective : "elbo", or "iwae" for the importance-weighted bound with the L samples.
        k : int, samples per example when eps is drawn.
        free_bits : float λ ≥ 0. When positive, the KL term is Σ_Z max(λ, KL_Z), with KL_Z the
            batch mean of the KL of latent dimension Z (Kingma et al. 2016).

        Returns
        -------
        loss : float, mean over the batch of [NLL(x|z) + beta · KL] (NLL averaged over L).
        grads : dict with exactly the keys of ``params``, each ∂loss/∂param.
        stats : dict of floats: "loss", "recon" (mean NLL), "kl" (mean closed-form KL).
        """
        x, eps = self._inputs(x, eps, rng, k)
        if objective == "iwae":
            if beta != 1.0 or free_bits:
                raise ValueError("the IWAE bound has no beta or free bits; use objective='elbo'.")
            return self._iwae_loss_and_grads(x, eps)
        if objective != "elbo":
            raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}.")
        if free_bits < 0:
            raise ValueError(f"free_bits must be ≥ 0 nats, got {free_bits}.")
        B = x.shape[0]
        L = eps.shape[0] if eps.ndim == 3 else 1

        # ---------------------------------------------------------------- forward
        mu, logvar, z, nll, dheads, (enc_cache, rep_cache, dec_cache) = self._forward(x, eps)
        kl, dmu_kl, dlogvar_kl = kl_standard_normal(mu, logvar)  # (B,), (B, Z), (B, Z)
        recon = nll.mean()  # mean over L and B
        if free_bits:
            kl_dim = kl_per_dimension(mu, logvar).mean(axis=0)  # (Z,): batch mean per dimension
            binding = kl_dim > free_bits  # (Z,): dimensions above the floor keep a gradient
            kl_term = np.maximum(kl_dim, free_bits).sum()
        else:
            kl_term = kl.mean()
        loss = recon + beta * kl_term

        # ---------------------------------------------------------------- backward
        grads = {}
        # 1. Output layer. recon = (1/LB) Σ_lb NLL_lb, and _nll gave ∂NLL/∂heads per sample:
        #    Bernoulli  dlogits = (σ(logits) - x) / (LB)
        #    Gaussian   dmean   = (mean - x) / (σ² LB)
        #    learned    dmean   = (mean - x) e^{-logvar_x} / (LB),
        #               dlogvar_x = ½ [1 - (x - mean)² e^{-logvar_x}] / (LB)
        scale = 1.0 / (L * B)
        dheads = [(d * scale).reshape(-1, d.shape[-1]) for d in dheads]  # each (L·B, D)

        # 2. Decoder: back through the heads and the trunk to the samples, dz : (L, B, Z).
        dz = self._decode_backward(dheads, dec_cache, grads).reshape(z.shape)

        # 3. Reparameterization z = mu + σ·eps, σ = exp(logvar / 2):
        #    dmu = Σ_L dz,   dlogvar = Σ_L dz · eps · σ / 2.
        dmu, dlogvar = reparameterize_backward(dz, rep_cache)  # (B, Z) each

        # 4. KL = ½ Σ_Z (mu² + e^logvar - logvar - 1), averaged over B and weighted by beta:
        #    ∂/∂mu = beta · mu / B,   ∂/∂logvar = beta · (e^logvar - 1) / (2B).
        #    mu and logvar each feed two paths, the sampler and the KL: the gradients ADD here.
        #    With free bits, only the dimensions whose batch-mean KL exceeds λ pass a gradient.
        kl_scale = beta / B
        if free_bits:
            kl_scale = kl_scale * binding.astype(self.dtype)  # (Z,)
        dmu += kl_scale * dmu_kl
        dlogvar += kl_scale * dlogvar_kl

        # 5. Encoder: the two heads (the logvar head through its clamp) meet at the trunk's
        #    output h, where their gradients add; then back through the trunk to every weight.
        self._encode_backward(dmu, dlogvar, enc_cache, grads)

        stats = {"loss": float(loss), "recon": float(recon), "kl": float(kl.mean())}
        return float(loss), self._ordered(grads), stats

    def _iwae_loss_and_grads(self, x, eps):
        """The importance-weighted bound (Burda et al. 2016) with the K = L samples of eps.

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
        mu, logvar, z, nll, dheads, (enc_cache, rep_cache, dec_cache) = self._forward(x, eps)
        log_pz, dz_pz = standard_normal_log_density(z)  # (K, B), (K, B, Z)
        log_qz, dz_qz, dmu_qz, dlogvar_qz = gaussian_log_density(z, mu, logvar)  # (K, B)
        log_w = -nll + log_pz - log_qz  # (K, B)
        log_mean_w = logsumexp(log_w, axis=0) - math.log(K)  # (B,)
        w_tilde = np.exp(log_w - logsumexp(log_w, axis=0))  # (K, B), Σ_K w̃ = 1
        loss = -log_mean_w.mean()

        # ---------------------------------------------------------------- backward
        grads = {}
        c = (w_tilde / B)[..., None]  # (K, B, 1): ∂loss/∂(-log w) for each sample
        # 1. -log w contains +NLL: the decoder heads get c · ∂NLL/∂heads.
        dheads = [(d * c).reshape(-1, d.shape[-1]) for d in dheads]  # each (K·B, D)
        # 2. Decoder to z; then -log w's other terms that depend on z:
        #    ∂(-log p(z))/∂z = z,   ∂(+log q(z|x))/∂z = -(z - mu) e^{-logvar}.
        dz = self._decode_backward(dheads, dec_cache, grads).reshape(z.shape)  # (K, B, Z)
        dz += c * (-dz_pz + dz_qz)
        # 3. Reparameterization, summing over the K samples.
        dmu, dlogvar = reparameterize_backward(dz, rep_cache)  # (B, Z)
        # 4. log q(z|x) also depends on mu and logvar directly (with z held fixed); those paths
        #    add to the sampler's: ∂log q/∂mu = (z - mu) e^{-logvar},
        #    ∂log q/∂logvar = -½ [1 - (z - mu)² e^{-logvar}].
        dmu += (c * dmu_qz).sum(axis=0)
        dlogvar += (c * dlogvar_qz).sum(axis=0)
        # 5. Encoder.
        self._encode_backward(dmu, dlogvar, enc_cache, grads)

        kl, _, _ = kl_standard_normal(mu, logvar)
        stats = {"loss": float(loss), "recon": float(nll.mean()), "kl": float(kl.mean())}
        return float(loss), self._ordered(grads), stats

    def _inputs(self, x, eps, rng, k):
        """Validate x (and eps), or draw eps ~ N(0, I) of shape (B, Z), or (k, B, Z) if k > 1."""
        x = checks.as_batch(x, self.input_dim, self.dtype,
                            unit_interval=self.config.likelihood == "bernoulli")
        B, Z = x.shape[0], self.latent_dim
        if eps is None:
            if int(k) != k or k < 1:
                raise ValueError(f"k must be a positive integer number of samples, got {k!r}.")
            rng = self.rng if rng is None else rng
            shape = (B, Z) if k == 1 else (int(k), B, Z)
            eps = rng.standard_normal(shape, dtype=self.dtype)
        return x, checks.as_eps(eps, B, Z, self.dtype)

    # ------------------------------------------------------------------------ inference

    def encode(self, x):
        """q(z|x): x : (B, D)  ->  (mu, logvar), each (B, Z)."""
        x = checks.as_batch(x, self.input_dim, self.dtype)
        mu, logvar, _ = self._encode_forward(x)
        return mu, logvar

    def decode(self, z):
        """The mean of p(x|z): probabilities σ(logits) for Bernoulli, else the Gaussian mean.

        z : (N, Z)  ->  (N, D).
        """
        z = checks.as_batch(z, self.latent_dim, self.dtype, name="z")
        heads, _ = self._decode_forward(z)
        return sigmoid(heads[0]) if self.config.likelihood == "bernoulli" else heads[0]

    def reconstruct(self, x):
        """The decoded mean at the posterior mean: decode(mu(x)), (B, D)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def sample(self, n, rng=None):
        """n draws z ~ N(0, I) from the prior, decoded to the mean of p(x|z): (n, D)."""
        rng = self.rng if rng is None else rng
        return self.decode(rng.standard_normal((int(n), self.latent_dim), dtype=self.dtype))

    def log_weights(self, x, eps):
        """log w = log p(x|z) + log p(z) - log q(z|x) for each sample: (L, B).

        The importance weights of log p(x) ≥ E_q log w; never the analytic KL inside.
        x : (B, D), eps : (L, B, Z).
        """
        x = checks.as_batch(x, self.input_dim, self.dtype,
                            unit_interval=self.config.likelihood == "bernoulli")
        eps = checks.as_eps(eps, x.shape[0], self.latent_dim, self.dtype)
        mu, logvar, z, nll, _, _ = self._forward(x, eps, need_grad=False)
        log_pz = standard_normal_log_density(z)[0]
        log_qz = gaussian_log_density(z, mu, logvar)[0]
        return -nll + log_pz - log_qz

    def nll(self, x, eps):
        """-log p(x|z) at the samples z = mu + σ·eps, forward only: (B,) or (L, B).

        x : (B, D), eps : (B, Z) or (L, B, Z).
        """
        x, eps = self._inputs(x, eps, None, 1)
        return self._forward(x, eps, need_grad=False)[3]

    def log_likelihood(self, x, k=5000, rng=None, batch_size=None):
        """Importance-weighted estimate of log p(x) in nats, per example: (B,) float64.

        log p(x) ≈ log (1/k) Σ_k w_k,  log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),
        z_k ~ q(z|x), in chunks of bounded memory. See ``npvae.evaluate.log_likelihood``.
        """
        from .evaluate import log_likelihood  # evaluate imports this module

        return log_likelihood(self, x, k=k, rng=rng, batch_size=batch_size)

    def fit(self, x, **kwargs):
        """Train this model on x, (N, D): ``npvae.train(self, x, **kwargs)``; returns the history."""
        from .training import train  # training imports this module

        return train(self, x, **kwargs)

    def save(self, path, optimizer=None, history=None):
        """Write a checkpoint (see ``npvae.checkpoint.save``); ``npvae.load(path)`` reads it."""
        from .checkpoint import save  # checkpoint imports this module

        return save(path, self, optimizer=optimizer, history=history)


def logsumexp(a, axis):
    """log Σ exp(a) along ``axis``, shifted by the max so that nothing overflows."""
    a_max = a.max(axis=axis, keepdims=True)
    a_max = np.where(np.isfinite(a_max), a_max, 0)
    return np.log(np.exp(a - a_max).sum(axis=axis)) + np.squeeze(a_max, axis=axis)
