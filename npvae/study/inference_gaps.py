"""The inference gap split in two: the cost of amortisation and the cost of a diagonal q.

With the decoder p(x|z) fixed, log p(x) − ELBO(x; q_encoder) ≥ 0 is the inference gap. Cremer,
Li & Duvenaud (2018, "Inference Suboptimality in Variational Autoencoders") split it by asking
what the best q of a family would reach for x alone:

    log p(x) − ELBO(q_full*)          the approximation gap of a full-covariance Gaussian
    ELBO(q_full*) − ELBO(q_diag*)     the cost of a diagonal q (≥ 0: diagonal ⊂ full)
    ELBO(q_diag*) − ELBO(q_encoder)   the amortisation gap (one encoder for every x)

q_diag* and q_full* are found per example by the same Adam run on the ELBO (``optimize_full_q``,
with the off-diagonal entries of L held at 0 for the diagonal family), from the encoder's q.
The gradient with respect to q's parameters (mu, logvar, offdiag) is steps 1 to 4 of the loss's
backward (``FullCovarianceVAE.loss_and_grads``) with q's parameters as the variables
(``elbo_of_full_q_and_grads``). Every ELBO is then estimated with the *same* eps for the three
q's (common random numbers: z = mu + L eps), so their differences are far less noisy than each
ELBO; log p(x) is importance-sampled with q_full* as the proposal.

Shapes: B examples, Z latent, K samples.
"""

import math

import numpy as np

from ..core import checks
from ..core.distributions import (
    cholesky_backward,
    cholesky_forward,
    full_reparameterize_backward,
    full_reparameterize_forward,
    gaussian_full_log_density,
    kl_full_standard_normal,
    logsumexp,
    standard_normal_log_density,
)
from ..core.optim import Adam
from ..core.vae import VAE
from ..models.fullcov import FullCovarianceVAE
from ..models.hvae import HVAE
from .inference import recon_and_dz


def check_model(model, what):
    """Refuse a model whose decoder these functions do not read: they need one layer of latents
    with prior N(0, I) and no condition, the encoder's q diagonal (VAE) or full
    (FullCovarianceVAE)."""
    diagonal = isinstance(model, VAE) and tuple(model.encoder_heads) == VAE.encoder_heads
    if (not (diagonal or isinstance(model, FullCovarianceVAE)) or isinstance(model, HVAE)
            or model.conditional):
        raise TypeError(f"{what} supports npvae.VAE and npvae.FullCovarianceVAE (one layer of "
                        f"latents, prior N(0, I), no condition), not a {type(model).__name__}.")


def elbo_of_full_q_and_grads(model, x, mu, logvar, offdiag, eps):
    """The negative ELBO of a batch under q = N(mu, L Lᵀ), L = cholesky(logvar, offdiag), with
    the decoder fixed, and its gradient with respect to mu, logvar (B, Z) and offdiag
    (B, Z(Z−1)/2).

    Steps 1 to 4 of the loss's backward, same scalings (1/(K·B) on the NLL, 1/B on the KL):
        dz = ∂recon/∂z (output layer and decoder),
        dmu = Σ_K dz + mu / B,   dL = tril(Σ_K dz epsᵀ) + (L − diag(1/L_ii)) / B,
        dlogvar_i = dL_ii L_ii / 2,   doffdiag = dL below the diagonal.
    x : (B, D), eps : (K, B, Z)  ->  loss (float), dmu, dlogvar, doffdiag.
    """
    B = x.shape[0]
    L, chol_cache = cholesky_forward(logvar, offdiag)  # (B, Z, Z)
    z, sampler_cache = full_reparameterize_forward(mu, L, eps)  # (K, B, Z)
    recon, dz = recon_and_dz(model, x, z)  # steps 1 and 2
    dmu, dL = full_reparameterize_backward(dz, sampler_cache)  # step 3
    kl, dkl_dmu, dkl_dL = kl_full_standard_normal(mu, L)  # step 4
    dmu += dkl_dmu / B
    dL += dkl_dL / B
    dlogvar, doffdiag = cholesky_backward(dL, chol_cache)
    return recon + float(kl.mean()), dmu, dlogvar, doffdiag


def encoder_q(model, x):
    """The encoder's q(z|x) as (mu, L): L from ``encode_full`` for a FullCovarianceVAE, else
    diag(e^{logvar/2}). x : (B, D)  ->  (B, Z), (B, Z, Z)."""
    if isinstance(model, FullCovarianceVAE):
        return model.encode_full(x)
    mu, logvar = model.encode(x)
    Z = mu.shape[1]
    return mu, cholesky_forward(logvar, np.zeros((len(x), Z * (Z - 1) // 2), mu.dtype))[0]


def optimize_full_q(model, x, steps=300, lr=2e-2, k=4, diagonal=False, rng=None):
    """The best Gaussian q*(z) for each example with the decoder fixed: full covariance, or
    diagonal with ``diagonal=True`` (the entries of L below the diagonal held at 0).

    (mu, log L_ii², offdiag) start at the encoder's q (the diagonal entries of L, the
    off-diagonal ones at 0) and follow Adam on the negative ELBO with k reparameterised samples
    per step; the learning rate falls linearly from lr to lr / 10 over the steps, so the last
    iterate is not left rattling at the noise of the k-sample gradient. The examples do not
    interact, so one batch optimises each independently. Returns mu (B, Z), L (B, Z, Z).
    """
    check_model(model, "optimize_full_q")
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    steps = checks.positive_int(steps, "steps")
    x = model._check_x(x)
    mu, L = encoder_q(model, x)
    Z = mu.shape[1]
    rows, cols = np.tril_indices(Z, -1)
    q = {"mu": mu.copy(), "logvar": 2 * np.log(np.diagonal(L, axis1=1, axis2=2)),
         "offdiag": np.zeros((len(x), len(rows)), model.dtype)}  # the diagonal start
    opt = Adam(q, lr=lr)
    for step in range(steps):
        opt.lr = lr * (1 - 0.9 * step / max(1, steps - 1))
        eps = rng.standard_normal((k, len(x), Z), dtype=model.dtype)  # (K, B, Z)
        _, dmu, dlogvar, doffdiag = elbo_of_full_q_and_grads(model, x, q["mu"], q["logvar"],
                                                             q["offdiag"], eps)
        opt.step({"mu": dmu, "logvar": dlogvar, "offdiag": 0 * doffdiag if diagonal else doffdiag})
    return q["mu"], cholesky_forward(q["logvar"], q["offdiag"])[0]


def elbo_of_full_q(model, x, mu, L, eps, chunk=250):
    """The ELBO of each example under q = N(mu, L Lᵀ), the decoder fixed, at the given samples:
    the mean over K of log p(x|z), z = mu + L eps, minus the closed-form KL. Pass the same eps
    for several q's to compare them with common random numbers.
    x (B, D), mu (B, Z), L (B, Z, Z), eps (K, B, Z)  ->  (B,) float64."""
    cond = model._cond(None, len(x))
    total = np.zeros(len(x))
    for start in range(0, len(eps), chunk):  # K in chunks, to bound the decoder's memory
        z, _ = full_reparameterize_forward(mu, L, eps[start:start + chunk])  # (k, B, Z)
        nll = model._decode_nll(x, z, cond, need_grad=False)[0]  # (k, B)
        total += nll.astype(np.float64).sum(axis=0)
    return -total / len(eps) - kl_full_standard_normal(mu.astype(np.float64),
                                                       L.astype(np.float64))[0]


def log_px_importance(model, x, mu, L, k=2000, rng=None, chunk=250):
    """log p(x) ≈ log (1/k) Σ_k p(x|z_k) p(z_k) / q(z_k), z_k ~ q = N(mu, L Lᵀ): the importance-
    sampled log-likelihood with a given proposal (the tighter q, the smaller the bias). (B,)."""
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    cond = model._cond(None, len(x))
    parts = []
    for start in range(0, k, chunk):
        eps = rng.standard_normal((min(chunk, k - start), *mu.shape), dtype=model.dtype)
        z, _ = full_reparameterize_forward(mu, L, eps)  # (k, B, Z)
        nll = model._decode_nll(x, z, cond, need_grad=False)[0]  # (k, B)
        log_w = (-nll + standard_normal_log_density(z)[0]
                 - gaussian_full_log_density(z, mu, L)[0]).astype(np.float64)
        parts.append(logsumexp(log_w, axis=0))  # (B,)
    return logsumexp(np.stack(parts), axis=0) - math.log(k)


def inference_gaps(model, x, steps=300, k_elbo=1000, k_log_px=2000, rng=None):
    """Per example, with the decoder fixed: the importance-sampled log p(x) and the ELBOs of
    q_full*, q_diag* and the encoder's q, all four (B,) float64 in a dict ("log_px",
    "elbo_full", "elbo_diag", "elbo_encoder"), and the q's themselves as (mu, L) pairs
    ("q_full", "q_diag", "q_encoder"). The three ELBOs share their k_elbo samples of eps."""
    check_model(model, "inference_gaps")
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    x = model._check_x(x)
    qs = {"q_encoder": encoder_q(model, x),
          "q_diag": optimize_full_q(model, x, steps, diagonal=True, rng=rng),
          "q_full": optimize_full_q(model, x, steps, rng=rng)}
    eps = rng.standard_normal((k_elbo, len(x), model.latent_dim), dtype=model.dtype)
    out = {f"elbo_{name[2:]}": elbo_of_full_q(model, x, *q, eps) for name, q in qs.items()}
    out["log_px"] = log_px_importance(model, x, *qs["q_full"], k=k_log_px, rng=rng)
    return {**out, **qs}


# ---------------------------------------------------------------- a case with every term known

def linear_gaussian_posterior_q(V, b, sigma):
    """A linear-Gaussian FullCovarianceVAE (float64) whose encoder emits the exact posterior.

    Decoder p(x|z) = N(z V + b, σ² I), V : (Z, D), prior N(0, I); then p(z|x) = N(m, Σ) with
    Σ = (I + V Vᵀ / σ²)⁻¹ and m = (x − b) Vᵀ Σ / σ², the same Σ for every x. The encoder is
    linear (hidden_dims=()): mu.W = Vᵀ Σ / σ², mu.b = −b Vᵀ Σ / σ², and L = cholesky(Σ) in the
    heads' biases. Returns the model and Σ (Z, Z).
    """
    V, b = np.asarray(V, np.float64), np.asarray(b, np.float64)
    Z, D = V.shape
    model = FullCovarianceVAE(D, hidden_dims=(), latent_dim=Z, likelihood="gaussian",
                              sigma=sigma, dtype=np.float64, seed=0)
    cov = np.linalg.inv(np.eye(Z) + V @ V.T / sigma**2)  # (Z, Z)
    chol = np.linalg.cholesky(cov)  # lower triangular, positive diagonal
    p = model.params
    p["out.W"][...], p["out.b"][...] = V, b
    p["mu.W"][...], p["mu.b"][...] = V.T @ cov / sigma**2, -(b @ V.T) @ cov / sigma**2
    p["logvar.W"][...], p["logvar.b"][...] = 0.0, 2 * np.log(np.diag(chol))
    p["offdiag.W"][...], p["offdiag.b"][...] = 0.0, chol[np.tril_indices(Z, -1)]
    return model, cov


def diagonal_cost(cov):
    """The cost of a diagonal q for a Gaussian posterior N(m, Σ), in nats: the best diagonal
    Gaussian has mean m and variances 1/Λ_ii (Λ = Σ⁻¹), and its KL to the posterior is
    ½ [Σ_i log Λ_ii − log det Λ] (0 when Σ is diagonal; −½ log(1 − ρ²) for Z = 2 with
    correlation ρ)."""
    precision = np.linalg.inv(cov)
    return 0.5 * (np.log(np.diag(precision)).sum() - np.linalg.slogdet(precision)[1])
