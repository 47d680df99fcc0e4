"""A hierarchical VAE: two layers of latents, z₂ above z₁, with the backward written out.

    generative  z₂ ~ N(0, I)                                                     p(z₂)
                z₂ ─► [dense ─► act] × n ─┬─► dense ─► mu_p                      p(z₁|z₂) =
                                          └─► dense ─► clamp ─► logvar_p           N(mu_p, e^logvar_p)
                z₁ ─► the VAE's decoder ─► logits or mean                        p(x|z₁)
    inference   x  ─► [dense ─► act] × n ─► mu₁, logvar₁                         q(z₁|x)
                z₁ ─► [dense ─► act] × n ─► mu₂, logvar₂                         q(z₂|z₁)
    samples     z₁ = mu₁ + e^{logvar₁/2} · eps₁,   z₂ = mu₂(z₁) + e^{logvar₂/2} · eps₂

    loss = (1/(K·B)) Σ_kb [ NLL(x_b | z₁) + beta (log q(z₁|x_b) − log p(z₁|z₂)) + beta KL(q(z₂|z₁) ‖ N(0, I)) ]

This is the negative ELBO of p(x, z₁, z₂) = p(x|z₁) p(z₁|z₂) p(z₂) under q(z₁|x) q(z₂|z₁).
The top KL is in closed form given z₁. The middle term is left sampled: z₂ is drawn from
q(z₂|z₁), so it depends on z₁, and E_q[log q(z₁|x) − log p(z₁|z₂)] is not a KL between two
fixed Gaussians. Its per-example mean is reported as "kl1" (an estimate of the layer's share of
the KL), the top one as "kl2".

Noise: eps is one array (…, B, Z₁ + Z₂), eps₁ its first Z₁ columns and eps₂ the rest, so that
the VAE's machinery (noise drawing, checks, the importance-weighted log-likelihood) serves both
models; ``loss_and_grads`` also takes the pair (eps₁, eps₂).

Symbols: B batch, D data, H hidden, Z₁ and Z₂ the two latent sizes, K samples per example.
"""

import dataclasses
import numbers

import numpy as np

from ..core import checks
from ..core.distributions import (
    gaussian_log_density,
    kl_standard_normal,
    reparameterize_backward,
    reparameterize_forward,
    standard_normal_log_density,
)
from ..core.vae import DEFAULT_HIDDEN_DIMS, VAE, VAEConfig, layer_shapes


@dataclasses.dataclass(frozen=True)
class HVAEConfig(VAEConfig):
    """A VAEConfig whose latent_dim is Z₁, with the top layer's size Z₂."""

    top_latent_dim: int = dataclasses.field(kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        value = self.top_latent_dim
        if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"latent_dims must be two positive integers, got Z₂ = {value!r}.")


class HVAE(VAE):
    """A VAE with two stochastic layers (see the module docstring).

    Parameters: as for ``VAE``, with ``latent_dims=(Z₁, Z₂)``; every MLP uses ``hidden_dims``
    (the decoder reversed). The parameters of q(z₁|x) and p(x|z₁) have the VAE's names;
    q(z₂|z₁) has "encoder2.*", "mu2", "logvar2", and p(z₁|z₂) "prior.*", "prior_mu",
    "prior_logvar".
    """

    def __init__(self, input_dim, hidden_dims=DEFAULT_HIDDEN_DIMS, latent_dims=(20, 10),
                 likelihood="bernoulli", activation="relu", sigma=1.0, dtype=np.float32,
                 seed=None):
        if isinstance(latent_dims, (numbers.Number, str)) or len(latent_dims) != 2:
            raise ValueError(f"latent_dims must be (Z₁, Z₂), two sizes, got {latent_dims!r}.")
        self._top = latent_dims[1]  # Z₂, read by _config_extras
        super().__init__(input_dim, hidden_dims, latent_dims[0], likelihood, activation, sigma,
                         dtype, seed)

    config_class = HVAEConfig

    def _config_extras(self):
        return {"top_latent_dim": self._top}

    @classmethod
    def from_config(cls, config, seed=None):
        """Build a model from an HVAEConfig or its dict (its two sizes as ``latent_dims``)."""
        if not isinstance(config, HVAEConfig):
            config = HVAEConfig(**config)
        kwargs = dataclasses.asdict(config)
        kwargs["latent_dims"] = (kwargs.pop("latent_dim"), kwargs.pop("top_latent_dim"))
        return cls(**kwargs, seed=seed)

    @classmethod
    def shapes_of(cls, config):
        """The VAE's layers for x and z₁, then q(z₂|z₁)'s and p(z₁|z₂)'s."""
        act, hidden, Z1, Z2 = (config.activation, config.hidden_dims, config.latent_dim,
                               config.top_latent_dim)
        shapes = layer_shapes(config)
        for trunk, heads, fan_in, fan_out in (("encoder2", ("mu2", "logvar2"), Z1, Z2),
                                              ("prior", ("prior_mu", "prior_logvar"), Z2, Z1)):
            sizes = (fan_in, *hidden)
            shapes += [(f"{trunk}.{i}", sizes[i], sizes[i + 1], act) for i in range(len(hidden))]
            shapes += [(head, sizes[-1], fan_out, "identity") for head in heads]
        return shapes

    @property
    def latent_dims(self):
        return self.config.latent_dim, self.config.top_latent_dim

    @property
    def noise_dim(self):
        return self.config.latent_dim + self.config.top_latent_dim

    # ------------------------------------------------------------------------ forward

    def _hierarchy_forward(self, x, eps, need_grad=True):
        """Everything the loss and its backward need, from x (B, D) and eps (K, B, Z₁ + Z₂),
        always with the K axis (K = 1 for one sample)."""
        Z1 = self.config.latent_dim
        mu1, logvar1, q1_cache = self._gaussian_forward(x, "encoder", "mu", "logvar")  # q(z₁|x)
        z1, sampler1 = reparameterize_forward(mu1, logvar1, eps[..., :Z1])  # (K, B, Z₁)
        z1_rows = z1.reshape(-1, Z1)  # (K·B, Z₁)
        mu2, logvar2, q2_cache = self._gaussian_forward(z1_rows, "encoder2", "mu2", "logvar2")
        eps2 = eps[..., Z1:].reshape(len(z1_rows), -1)  # (K·B, Z₂)
        z2, sampler2 = reparameterize_forward(mu2, logvar2, eps2)  # (K·B, Z₂)
        mu_p, logvar_p, p1_cache = self._gaussian_forward(z2, "prior", "prior_mu",
                                                          "prior_logvar")  # (K·B, Z₁) each
        heads, decoder_cache = self._decode_forward(z1_rows)  # each (K·B, D)
        x_rows = np.broadcast_to(x, (len(z1), *x.shape))  # (K, B, D): x for every sample
        nll, dnll = self._nll(heads, x_rows.reshape(len(z1_rows), -1), need_grad)
        return dict(mu1=mu1, logvar1=logvar1, z1=z1, z1_rows=z1_rows, mu2=mu2, logvar2=logvar2,
                    z2=z2, mu_p=mu_p, logvar_p=logvar_p, nll=nll, dnll=dnll, q1=q1_cache,
                    q2=q2_cache, p1=p1_cache, decoder=decoder_cache, sampler1=sampler1,
                    sampler2=sampler2)

    def _terms(self, f):
        """Per sample (K·B,): log q(z₁|x), log p(z₁|z₂) and KL(q(z₂|z₁) ‖ N(0, I)), with
        the gradients of each with respect to what it reads."""
        K = f["z1"].shape[0]  # z₁ is always (K, B, Z₁) here
        mu1 = np.broadcast_to(f["mu1"], (K, *f["mu1"].shape)).reshape(f["z1_rows"].shape)
        logvar1 = np.broadcast_to(f["logvar1"], (K, *f["logvar1"].shape)).reshape(mu1.shape)
        log_q1 = gaussian_log_density(f["z1_rows"], mu1, logvar1)  # value, dz, dmu, dlogvar
        log_p1 = gaussian_log_density(f["z1_rows"], f["mu_p"], f["logvar_p"])
        kl2 = kl_standard_normal(f["mu2"], f["logvar2"])  # value, dmu2, dlogvar2
        return log_q1, log_p1, kl2

    # ------------------------------------------------------------------------ the loss

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0, cond=None):
        """The negative ELBO in nats per example, and its gradient (see the module docstring).

        eps : (B, Z₁ + Z₂) or (K, B, Z₁ + Z₂), or the pair (eps₁, eps₂), or None to draw it.
        beta : weight of both layers' KL terms. The IWAE objective and free bits are the
        VAE's only. Returns loss, grads (the keys of params), and stats with "recon", "kl",
        "kl1", "kl2" (nats per example).
        """
        if objective != "elbo" or free_bits or cond is not None:
            raise ValueError("the HVAE trains on the ELBO only: no IWAE objective, no free bits, "
                             "no condition.")
        if isinstance(eps, tuple):
            eps = np.concatenate([np.asarray(e) for e in eps], axis=-1)
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.noise_dim, self.dtype, k, rng, self.rng)
        beta = checks.nonnegative(beta, "beta")
        if eps.ndim == 2:
            eps = eps[None]  # (1, B, Z₁ + Z₂)
        f = self._hierarchy_forward(x, eps)
        log_q1, log_p1, kl2 = self._terms(f)
        rows = len(f["z1_rows"])  # K·B
        recon, kl1, kl2_mean = f["nll"].mean(), (log_q1[0] - log_p1[0]).mean(), kl2[0].mean()
        loss = recon + beta * (kl1 + kl2_mean)
        grads = self._hierarchy_backward(f, log_q1, log_p1, kl2, beta / rows, 1.0 / rows)
        stats = {"loss": float(loss), "recon": float(recon), "kl": float(kl1 + kl2_mean),
                 "kl1": float(kl1), "kl2": float(kl2_mean)}
        return float(loss), {name: grads[name] for name in self.params}, stats

    def _hierarchy_backward(self, f, log_q1, log_p1, kl2, kl_scale, scale):
        """The backward, from the loss to every weight. Every per-sample term enters the loss
        with weight 1/(K·B) (``scale``), the KL terms with beta/(K·B) (``kl_scale``)."""
        grads = {}
        # 1. Output layer and decoder: NLL(x|z₁) ─► dz₁ (K·B, Z₁).
        dz1 = self._decode_backward([d * scale for d in f["dnll"]], f["decoder"], grads)
        # 2. The top KL, KL(q(z₂|z₁) ‖ N(0, I)):  ∂/∂mu₂ = mu₂,  ∂/∂logvar₂ = ½(e^logvar₂ − 1).
        dmu2, dlogvar2 = kl_scale * kl2[1], kl_scale * kl2[2]  # (K·B, Z₂) each
        # 3. −log p(z₁|z₂) depends on z₁ directly and, through mu_p and logvar_p, on z₂:
        #    ∂(−log p)/∂z₁ = (z₁ − mu_p) e^−logvar_p,  and −(∂log p/∂mu_p, ∂log p/∂logvar_p)
        #    go back through the prior network to dz₂.
        dz1 -= kl_scale * log_p1[1]
        dz2 = self._gaussian_backward(-kl_scale * log_p1[2], -kl_scale * log_p1[3], f["p1"],
                                      grads, "prior", "prior_mu", "prior_logvar")  # (K·B, Z₂)
        # 4. z₂ = mu₂ + std₂ · eps₂: dmu₂ += dz₂, dlogvar₂ += dz₂ · eps₂ · std₂ / 2 (one row per
        #    sample: nothing to sum). The top KL's path and the sampler's add here.
        dmu2_s, dlogvar2_s = reparameterize_backward(dz2, f["sampler2"])
        dmu2 += dmu2_s
        dlogvar2 += dlogvar2_s
        # 5. q(z₂|z₁) reads z₁: back through encoder2 to dz₁, which adds to the decoder's and
        #    the prior's paths (z₁ feeds four places: p(x|z₁), p(z₁|z₂), q(z₂|z₁), q(z₁|x)).
        dz1 += self._gaussian_backward(dmu2, dlogvar2, f["q2"], grads, "encoder2", "mu2",
                                       "logvar2")
        # 6. +log q(z₁|x): ∂/∂z₁ = −(z₁ − mu₁) e^−logvar₁, and directly (z₁ held) ∂/∂mu₁,
        #    ∂/∂logvar₁ (summed over the K samples below).
        dz1 += kl_scale * log_q1[1]
        shape = f["z1"].shape  # (K, B, Z₁)
        dmu1_direct = (kl_scale * log_q1[2]).reshape(shape).sum(axis=0)  # (B, Z₁)
        dlogvar1_direct = (kl_scale * log_q1[3]).reshape(shape).sum(axis=0)
        # 7. z₁ = mu₁ + std₁ · eps₁: Σ_K over the samples, then the encoder of q(z₁|x).
        dmu1, dlogvar1 = reparameterize_backward(dz1.reshape(f["z1"].shape), f["sampler1"])
        self._gaussian_backward(dmu1 + dmu1_direct, dlogvar1 + dlogvar1_direct, f["q1"], grads,
                                "encoder", "mu", "logvar", need_dinput=False)
        return grads

    # ------------------------------------------------------------------------ evaluation

    def log_weights(self, x, eps, cond=None):
        """log w = log p(x|z₁) + log p(z₁|z₂) + log p(z₂) − log q(z₁|x) − log q(z₂|z₁) for
        each sample: (K, B). The importance weights of ``npvae.study.evaluate.log_likelihood``."""
        x = self._check_x(x)
        eps = checks.as_eps(eps, x.shape[0], self.noise_dim, self.dtype)
        eps = eps if eps.ndim == 3 else eps[None]
        f = self._hierarchy_forward(x, eps, need_grad=False)
        log_q1, log_p1, _ = self._terms(f)
        log_q2 = gaussian_log_density(f["z2"], f["mu2"], f["logvar2"])[0]
        log_pz2 = standard_normal_log_density(f["z2"])[0]
        log_w = -f["nll"] + log_p1[0] + log_pz2 - log_q1[0] - log_q2  # (K·B,)
        return log_w.reshape(eps.shape[:2])

    def nll(self, x, eps, cond=None):
        """-log p(x|z₁) at the samples, forward only: (B,) or (K, B)."""
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.noise_dim, self.dtype)
        f = self._hierarchy_forward(x, eps if eps.ndim == 3 else eps[None], need_grad=False)
        return f["nll"].reshape(eps.shape[:-1])

    def encode_layers(self, x):
        """The means and log-variances of both layers: [(mu₁, logvar₁) of q(z₁|x), (mu₂,
        logvar₂) of q(z₂|z₁) at z₁ = mu₁], (B, Z₁) and (B, Z₂)."""
        mu1, logvar1 = self.encode(x)
        mu2, logvar2, _ = self._gaussian_forward(mu1, "encoder2", "mu2", "logvar2")
        return [(mu1, logvar1), (mu2, logvar2)]

    def sample(self, n, rng=None, draw=False):
        """Ancestral sampling: z₂ ~ N(0, I), z₁ ~ p(z₁|z₂), then the mean of p(x|z₁) (or with
        draw=True a draw x ~ p(x|z₁)): (n, D)."""
        rng = self.rng if rng is None else checks.as_generator(rng, "rng")
        n = checks.positive_int(n, "n")
        self._check_rows_fit(n)
        z2 = rng.standard_normal((n, self.config.top_latent_dim), dtype=self.dtype)
        mu_p, logvar_p, _ = self._gaussian_forward(z2, "prior", "prior_mu", "prior_logvar")
        z1 = mu_p + np.exp(0.5 * logvar_p) * rng.standard_normal(mu_p.shape, dtype=self.dtype)
        return self.decode(z1, draw, rng)

    def elbo_terms(self, x, eps, cond=None):
        """Per example, forward only: NLL(x|z₁) and the sampled KL term of both layers,
        log q(z₁|x) − log p(z₁|z₂) + KL(q(z₂|z₁) ‖ N(0, I)), at one sample: (B,) each."""
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.noise_dim, self.dtype)
        f = self._hierarchy_forward(x, eps[None], need_grad=False)
        log_q1, log_p1, kl2 = self._terms(f)
        return f["nll"], log_q1[0] - log_p1[0] + kl2[0]

    def kl_per_layer(self, x, rng=None):
        """Mean over x of each layer's KL term (nats), forward only, one sample per example:
        (kl1, kl2), as in the loss's stats."""
        x = self._check_x(x)
        eps = checks.as_eps(None, len(x), self.noise_dim, self.dtype, 1, rng, self.rng)
        f = self._hierarchy_forward(x, eps[None], need_grad=False)
        log_q1, log_p1, kl2 = self._terms(f)
        return float((log_q1[0] - log_p1[0]).mean()), float(kl2[0].mean())

    def prior_log_weights(self, x, eps, cond=None):
        """log p(x|z₁) at ancestral draws from the prior, z₂ = eps₂ ~ N(0, I) and
        z₁ = mu_p(z₂) + e^{logvar_p/2} · eps₁ ~ p(z₁|z₂): the weights of the naive estimator
        p(x) ≈ (1/K) Σ_k p(x|z₁ₖ). x : (B, D), eps : (K, B, Z₁ + Z₂) -> (K, B)."""
        x = self._check_x(x)
        eps = checks.as_eps(eps, x.shape[0], self.noise_dim, self.dtype)
        eps = eps if eps.ndim == 3 else eps[None]  # (K, B, Z₁ + Z₂)
        Z1 = self.config.latent_dim
        z2 = eps[..., Z1:].reshape(-1, self.config.top_latent_dim)  # (K·B, Z₂)
        mu_p, logvar_p, _ = self._gaussian_forward(z2, "prior", "prior_mu", "prior_logvar")
        z1 = mu_p + np.exp(0.5 * logvar_p) * eps[..., :Z1].reshape(mu_p.shape)  # (K·B, Z₁)
        return -self._decode_nll(x, z1.reshape(*eps.shape[:2], Z1),
                                 self._cond(None, len(x)), need_grad=False)[0]

    def kl_per_dimension(self, x, eps):
        """Each latent dimension's share of the ELBO's KL term, per example, at one sample:
        layer 1, log q(z₁ⱼ|x) − log p(z₁ⱼ|z₂) (sampled, as in the loss), and layer 2,
        KL(q(z₂ⱼ|z₁) ‖ N(0, 1)) in closed form. Both are sums over dimensions of diagonal
        Gaussians, so the shares add up to ``elbo_terms``' KL. x : (B, D), eps : (B, Z₁ + Z₂)
        -> (B, Z₁) and (B, Z₂)."""
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.noise_dim, self.dtype)
        f = self._hierarchy_forward(x, eps[None], need_grad=False)

        def log_density(z, mu, logvar):  # per dimension; the ½ log 2π cancels in the difference
            return -0.5 * (logvar + (z - mu) ** 2 * np.exp(-logvar))

        kl1 = (log_density(f["z1_rows"], f["mu1"], f["logvar1"])
               - log_density(f["z1_rows"], f["mu_p"], f["logvar_p"]))  # (B, Z₁)
        kl2 = 0.5 * (f["mu2"] ** 2 + np.exp(f["logvar2"]) - f["logvar2"] - 1)  # (B, Z₂)
        return kl1, kl2
