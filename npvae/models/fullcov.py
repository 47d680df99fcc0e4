"""A VAE whose q(z|x) is a full-covariance Gaussian, with the backward written out.

    encoder   x ─► [dense ─► act] × n ─► h_enc ─┬─► dense ─► mu                        q(z|x) =
                                               ├─► dense ─► clamp ─► logvar ─┐          N(mu, L Lᵀ)
                                               └─► dense ─► offdiag ─────────┴─► L
    sampler   z = mu + L eps,   eps ~ N(0, I),   L lower triangular,  L_ii = exp(logvar_i / 2)
    decoder   the VAE's: z ─► [dense ─► act] × n ─► logits or mean                    p(x|z)

    loss = (1/B) Σ_b [ (1/K) Σ_k NLL(x_b | z_kb) + beta · KL(N(mu_b, L_b L_bᵀ) ‖ N(0, I)) ]
    KL   = ½ [tr(L Lᵀ) + muᵀmu − Z − 2 Σ_i log L_ii]

The diagonal q of ``VAE`` assumes the posterior's coordinates are uncorrelated given x; this one
can tilt its ellipse along a correlated posterior. The encoder's third head emits the Z(Z−1)/2
entries of L below its diagonal (``distributions.cholesky_forward``); with that head at zero the
model is the diagonal VAE exactly, so the parameters named like the VAE's mean the same thing.
The price is Z(Z−1)/2 more outputs per example and a (B, Z, Z) factor: fine for the small Z
where correlations are visible (``demos/inference_gaps.py`` uses Z = 2).

Symbols: B batch, D data, H hidden, Z latent, K samples per example.
"""

import numpy as np

from ..core import checks
from ..core.distributions import (
    cholesky_backward,
    cholesky_forward,
    full_reparameterize_backward,
    full_reparameterize_forward,
    gaussian_full_log_density,
    kl_full_standard_normal,
    standard_normal_log_density,
)
from ..core.layers import (
    clamp_backward,
    clamp_forward,
    dense_backward,
    dense_forward,
    mlp_backward,
    mlp_forward,
)
from ..core.vae import DEFAULT_HIDDEN_DIMS, LOGVAR_MAX, LOGVAR_MIN, VAE, layer_shapes


class FullCovarianceVAE(VAE):
    """A VAE with q(z|x) = N(mu, L Lᵀ), L a Cholesky factor emitted by the encoder.

    Parameters: as for ``VAE``; latent_dim Z must be at least 2 (for Z = 1 a full covariance
    is the diagonal one). The encoder has a third head, "offdiag" (H, Z(Z−1)/2). No condition,
    no IWAE objective, no free bits: the ELBO with the closed-form KL only.
    """

    encoder_heads = ("mu", "logvar", "offdiag")

    def __init__(self, input_dim, hidden_dims=DEFAULT_HIDDEN_DIMS, latent_dim=2,
                 likelihood="bernoulli", activation="relu", sigma=1.0, dtype=np.float32,
                 seed=None):
        if checks.positive_int(latent_dim, "latent_dim") < 2:
            raise ValueError(f"a full-covariance q needs latent_dim ≥ 2, got {latent_dim}; "
                             f"for one latent dimension use npvae.VAE (the same model).")
        super().__init__(input_dim, hidden_dims, latent_dim, likelihood, activation, sigma,
                         dtype, seed)

    @classmethod
    def shapes_of(cls, config):
        """The VAE's layers, with the "offdiag" head (H, Z(Z−1)/2) after mu and logvar."""
        Z = config.latent_dim
        return [(name, fan_in, Z * (Z - 1) // 2 if name == "offdiag" else fan_out, act)
                for name, fan_in, fan_out, act in layer_shapes(config, 0, cls.encoder_heads)]

    # ------------------------------------------------------------------------ the loss

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0, cond=None):
        """The negative ELBO in nats per example, and its gradient for every parameter.

        x : (B, D); eps : (B, Z) or (K, B, Z), or None to draw it (k samples) from ``rng``,
        else from the model's generator; beta : the KL's weight. Returns loss, grads (the keys
        of params) and stats {"loss", "recon", "kl"}, as ``VAE.loss_and_grads``.
        """
        if objective != "elbo" or free_bits or cond is not None:
            raise ValueError("a FullCovarianceVAE trains on the ELBO only: no IWAE objective, "
                             "no free bits, no condition (use npvae.VAE for those).")
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.latent_dim, self.dtype, k, rng, self.rng)
        beta = checks.nonnegative(beta, "beta")
        p, B = self.params, len(x)

        # ---------------------------------------------------------------- forward
        h_enc, enc_caches = mlp_forward(x, p, "encoder", self._depth, self._act_forward)
        mu, mu_cache = dense_forward(h_enc, p["mu.W"], p["mu.b"])  # (B, Z)
        logvar_raw, logvar_cache = dense_forward(h_enc, p["logvar.W"], p["logvar.b"])  # (B, Z)
        logvar, inside = clamp_forward(logvar_raw, LOGVAR_MIN, LOGVAR_MAX)  # (B, Z)
        offdiag, off_cache = dense_forward(h_enc, p["offdiag.W"], p["offdiag.b"])  # (B, Z(Z-1)/2)
        L, chol_cache = cholesky_forward(logvar, offdiag)  # (B, Z, Z), L_ii = e^{logvar_i/2}
        z, sampler_cache = full_reparameterize_forward(mu, L, eps)  # (K, B, Z) or (B, Z)
        K = z.size // mu.size
        nll, dnll_dheads, decoder_cache = self._decode_nll(x, z, self._cond(None, B))  # (K, B)
        kl, dkl_dmu, dkl_dL = kl_full_standard_normal(mu, L)  # (B,), (B, Z), (B, Z, Z)
        recon = nll.mean()  # (1/(K·B)) Σ_kb NLL_kb
        loss = recon + beta * kl.mean()

        # ---------------------------------------------------------------- backward
        grads = dict.fromkeys(p)
        # 1-2. Output layer and decoder, as in VAE.loss_and_grads: each head's gradient of its
        #      own NLL_kb times 1/(K·B), applied here; back through the decoder to dz.
        scale = 1.0 / (K * B)
        dz = self._decode_backward([d * scale for d in dnll_dheads], decoder_cache,
                                   grads).reshape(z.shape)  # (K, B, Z) or (B, Z)
        # 3. Sampler z = mu + L eps, summed over the K samples:
        #    dmu = Σ_K dz,   dL = tril(Σ_K dz epsᵀ).
        dmu, dL = full_reparameterize_backward(dz, sampler_cache)  # (B, Z), (B, Z, Z)
        # 4. KL = ½ [tr(L Lᵀ) + muᵀmu − Z − 2 Σ log L_ii], weighted by beta / B:
        #    ∂/∂mu = mu,   ∂/∂L = L − diag(1 / L_ii).  The sampler's and the KL's paths ADD.
        dmu += (beta / B) * dkl_dmu
        dL += (beta / B) * dkl_dL
        # 4b. L from the heads: dlogvar_i = dL_ii · L_ii / 2, doffdiag = dL below the diagonal.
        dlogvar, doffdiag = cholesky_backward(dL, chol_cache)  # (B, Z), (B, Z(Z-1)/2)
        # 5. Encoder: logvar through its clamp (0 where it binds), the three heads' dense
        #    layers, whose gradients add at h_enc, then the trunk to every weight.
        dh_enc, grads["mu.W"], grads["mu.b"] = dense_backward(dmu, mu_cache)  # (B, H)
        dh_lv, grads["logvar.W"], grads["logvar.b"] = dense_backward(
            clamp_backward(dlogvar, inside), logvar_cache)
        dh_off, grads["offdiag.W"], grads["offdiag.b"] = dense_backward(doffdiag, off_cache)
        dh_enc += dh_lv + dh_off  # h_enc feeds all three heads: their gradients add
        mlp_backward(dh_enc, enc_caches, grads, "encoder", self._act_backward,
                     need_dinput=False)

        stats = {"loss": float(loss), "recon": float(recon), "kl": float(kl.mean())}
        return float(loss), grads, stats

    # ------------------------------------------------------------------------ inference

    def encode_full(self, x):
        """q(z|x) = N(mu, L Lᵀ): x : (B, D)  ->  mu : (B, Z), L : (B, Z, Z) lower triangular."""
        x = checks.as_batch(x, self.input_dim, self.dtype)
        p = self.params
        h, _ = mlp_forward(x, p, "encoder", self._depth, self._act_forward)
        mu, _ = dense_forward(h, p["mu.W"], p["mu.b"])  # (B, Z)
        logvar, _ = clamp_forward(dense_forward(h, p["logvar.W"], p["logvar.b"])[0],
                                  LOGVAR_MIN, LOGVAR_MAX)  # (B, Z)
        offdiag, _ = dense_forward(h, p["offdiag.W"], p["offdiag.b"])  # (B, Z(Z-1)/2)
        return mu, cholesky_forward(logvar, offdiag)[0]

    def encode(self, x, cond=None):
        """q(z|x)'s mean and the log of its *marginal* variances, log diag(L Lᵀ) = log Σ_j L_ij²
        (B, Z) each, so that code written for the diagonal q reads the right spread. The
        correlations are in ``encode_full``."""
        if cond is not None:
            raise TypeError("a FullCovarianceVAE takes no condition.")
        mu, L = self.encode_full(x)
        return mu, np.log((L * L).sum(axis=-1))

    def _full_forward(self, x, eps):
        """x checked, eps (B, Z) or (K, B, Z)  ->  mu, L, z and the NLL at z, forward only."""
        x = self._check_x(x)
        eps = checks.as_eps(eps, len(x), self.latent_dim, self.dtype)
        mu, L = self.encode_full(x)
        z, _ = full_reparameterize_forward(mu, L, eps)  # eps's shape
        nll = self._decode_nll(x, z, self._cond(None, len(x)), need_grad=False)[0]
        return mu, L, z, nll

    def log_weights(self, x, eps, cond=None):
        """log w = log p(x|z) + log p(z) − log q(z|x), q the full Gaussian: (K, B)."""
        eps = np.asarray(eps)
        mu, L, z, nll = self._full_forward(x, eps if eps.ndim == 3 else eps[None])
        log_qz = gaussian_full_log_density(z, mu, L)[0]  # (K, B)
        return -nll + standard_normal_log_density(z)[0] - log_qz

    def elbo_terms(self, x, eps, cond=None):
        """Per example, forward only, at one sample z = mu + L eps: -log p(x|z) and the
        closed-form KL(N(mu, L Lᵀ) ‖ N(0, I)), (B,) each. eps : (B, Z)."""
        mu, L, _, nll = self._full_forward(x, eps)
        return nll, kl_full_standard_normal(mu, L)[0]

    def nll(self, x, eps, cond=None):
        """-log p(x|z) at z = mu + L eps, forward only: (B,) or (K, B)."""
        return self._full_forward(x, eps)[3]
