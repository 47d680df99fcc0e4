"""The terminal nodes of the ELBO: likelihoods, the KL, a log-density and the sampler.

Each loss-like function returns its per-example value, summed over the last axis (the data or
latent dimension), together with the gradient *of that sum* with respect to each input. The
leading axes, (B,) or (K, B), are carried through, and the model divides by B (and K) where it
averages. All values are in nats.
"""

import math

import numpy as np

LOG_2PI = math.log(2 * math.pi)  # a Python float, so float32 arrays stay float32


# Σ_D log(u) is taken as the log of a product over blocks of this many pixels: a product of
# at most 1,000 factors in [1, 2] is at most 2¹⁰⁰⁰, inside float64's range (up to 2¹⁰²⁴).
LOG_PRODUCT_BLOCK = 1000


def bernoulli_nll(logits, x, need_grad=True):
    """-log Bernoulli(x | sigmoid(logits)), summed over D, and its gradient.

    nll     = Σ_D softplus(logits) - x·logits,
    dlogits = sigmoid(logits) - x          (the sigmoid fused with the cross-entropy).

    Both are computed stably from one e = exp(-|logits|) ∈ [0, 1] and u = 1 + e ∈ [1, 2], as
    ``layers.softplus`` and ``layers.sigmoid`` compute them: softplus(l) = max(l, 0) +
    log1p(e), and sigmoid(l) = 1/u for l ≥ 0, e/u below. So the loss is finite for any finite
    logits: no probability is clipped or logged, and nothing overflows.

    Two steps make it fast, each within float rounding (held to the textbook Σ softplus(l) -
    x·l in tests/test_distributions.py; with the gradient as max(e, [l ≥ 0]) / u they take a
    128 × 784 batch from 1.51 to 0.56 ms on the AMD CPU of docs/performance.md):
    - log1p(e) = log(u) + δ to within ulp(1)/4, where δ = e - (u - 1) is what rounding 1 + e
      lost (exactly, log(u + δ) = log(u) + log1p(δ/u)); ``np.log1p`` costs four ``np.log``.
    - Σ_D log(u) = log Π_D u: the product is formed in float64, each factor rounding it by at
      most 2⁻⁵³, over blocks of ``LOG_PRODUCT_BLOCK`` pixels: one log per row, not per pixel.
    In float32 (training) the loss is right to float32 rounding, a right prediction's tiny loss
    included (to its own last digits). In float64 the product's rounding leaves an absolute
    error of at most D·2⁻⁵³ nats (1e-13 for D = 784): nothing beside a loss of nats, but a
    float64 loss of 1e-6 nats over many pixels keeps only ten digits, not sixteen.

    e below the smallest normal float (1.2e-38 in float32, where |l| > 87.3) is set to 0, so
    that neither e nor sigmoid(l) is ever subnormal, where arithmetic is tens of times slower
    on some CPUs (docs/performance.md): a change below 1.2e-38 per entry.

    logits : (..., D) array, x : (..., D) array of the same dtype, with values in [0, 1]
    ->  nll : (...,) array,  dlogits : (..., D) array (None if not ``need_grad``).
    """
    e = np.exp(-np.abs(logits))  # (..., D), in [0, 1]
    np.copyto(e, 0, where=e < np.finfo(e.dtype).smallest_normal)  # no subnormal e
    u = 1 + e  # (..., D), in [1, 2]
    blocks = np.arange(0, logits.shape[-1], LOG_PRODUCT_BLOCK)  # each block's first pixel
    prod_u = np.multiply.reduceat(u, blocks, axis=-1, dtype=np.float64)  # (..., ⌈D/1000⌉)
    sum_log_u = np.log(prod_u).sum(axis=-1).astype(e.dtype)  # (...,): Σ_D log(u)
    # softplus(l) - x·l = max(l, 0) - x·l + log(u) + δ, with δ = e - (u - 1) (zero on paper)
    nll = (np.maximum(logits, 0) - x * logits + (e - (u - 1))).sum(axis=-1) + sum_log_u
    return nll, (np.maximum(e, logits >= 0) / u - x if need_grad else None)  # 1/u or e/u


def gaussian_nll(mean, x, sigma, need_grad=True):
    """-log N(x | mean, sigma² I), summed over D, and its gradient.

    nll = Σ_D (x - mean)² / (2σ²) + D/2 · log(2πσ²)   (a true NLL in nats),
    dmean = (mean - x) / σ².

    mean, x : (..., D) arrays, sigma : positive float  ->  nll : (...,),  dmean : (..., D)
    (None if not ``need_grad``).
    """
    sigma = float(sigma)  # a numpy float64 scalar would promote float32 arrays
    D = x.shape[-1]
    diff = mean - x  # (..., D)
    nll = (diff * diff).sum(axis=-1) / (2 * sigma**2) + D / 2 * (LOG_2PI + 2 * math.log(sigma))
    return nll, (diff / sigma**2 if need_grad else None)


def gaussian_nll_learned(mean, logvar, x, need_grad=True):
    """-log N(x | mean, diag exp(logvar)), summed over D, and its gradients.

    nll     = ½ Σ_D [log 2π + logvar + (x - mean)² e^{-logvar}],
    dmean   = (mean - x) e^{-logvar},
    dlogvar = ½ [1 - (x - mean)² e^{-logvar}].

    mean, logvar, x : (..., D) arrays  ->  nll : (...,),  dmean, dlogvar : (..., D)
    (None, None if not ``need_grad``).
    """
    inv_var = np.exp(-logvar)  # (..., D)
    diff = mean - x  # (..., D)
    sq = diff * diff * inv_var  # (..., D): squared standardised residual
    nll = 0.5 * (LOG_2PI + logvar + sq).sum(axis=-1)
    if not need_grad:
        return nll, None, None
    return nll, diff * inv_var, 0.5 * (1 - sq)


def kl_standard_normal(mu, logvar):
    """KL(N(mu, diag e^{logvar}) ‖ N(0, I)) in closed form, summed over Z, and its gradients.

    kl      = ½ Σ_Z [mu² + e^{logvar} - logvar - 1]   (Kingma & Welling 2014, appendix B),
    dmu     = mu,
    dlogvar = ½ (e^{logvar} - 1).
    e^{logvar} - 1 is computed as expm1(logvar), exact near the prior, where the KL is ~0.

    mu, logvar : (..., Z) arrays  ->  kl : (...,),  dmu, dlogvar : (..., Z).
    """
    expm1 = np.expm1(logvar)  # (..., Z)
    kl = 0.5 * (mu * mu + expm1 - logvar).sum(axis=-1)
    return kl, mu, 0.5 * expm1


def kl_per_dimension(mu, logvar):
    """½ [mu² + e^{logvar} - logvar - 1] for each latent dimension, unsummed: (..., Z)."""
    return 0.5 * (mu * mu + np.expm1(logvar) - logvar)


def free_bits_kl(mu, logvar, floor):
    """The free-bits KL term (Kingma et al. 2016) of a batch, and the dimensions it trains.

    term = Σ_Z max(λ, KL_Z),   KL_Z = (1/B) Σ_B KL_bZ, the batch mean of dimension Z's KL;
    ∂term/∂KL_bZ = 1[KL_Z > λ] / B: a dimension below the floor λ gets no gradient, so the
    KL cannot push it below λ nats.

    mu, logvar : (B, Z) arrays, floor : λ ≥ 0  ->  term : float,  trained : (Z,) bool array.
    """
    kl_dim = kl_per_dimension(mu, logvar).mean(axis=0)  # (Z,)
    return float(np.maximum(kl_dim, floor).sum()), kl_dim > floor


def gaussian_log_density(z, mu, logvar):
    """log N(z | mu, diag e^{logvar}), summed over Z, and its gradients.

    logp    = -½ Σ_Z [log 2π + logvar + (z - mu)² e^{-logvar}],
    dz      = -(z - mu) e^{-logvar},
    dmu     = +(z - mu) e^{-logvar},
    dlogvar = -½ [1 - (z - mu)² e^{-logvar}].

    z, mu, logvar : (..., Z) arrays (broadcastable)  ->  logp : (...,),  dz, dmu, dlogvar.
    """
    inv_var = np.exp(-logvar)
    diff = z - mu  # (..., Z)
    sq = diff * diff * inv_var
    logp = -0.5 * (LOG_2PI + logvar + sq).sum(axis=-1)
    dz = -diff * inv_var
    return logp, dz, -dz, -0.5 * (1 - sq)


def standard_normal_log_density(z):
    """log N(z | 0, I), summed over Z, and its gradient: logp = -½ Σ_Z [log 2π + z²], dz = -z.

    z : (..., Z) array  ->  logp : (...,),  dz : (..., Z).
    """
    return -0.5 * (LOG_2PI + z * z).sum(axis=-1), -z


def reparameterize_forward(mu, logvar, eps):
    """z = mu + std · eps with std = exp(logvar / 2), the reparameterization trick.

    The randomness is the input eps ~ N(0, I), so z is a deterministic, differentiable function
    of (mu, logvar) and the forward can be gradient-checked with eps held fixed.

    mu, logvar : (B, Z) arrays, eps : (B, Z) or (K, B, Z) array  ->  z : eps's shape.
    """
    std = np.exp(0.5 * logvar)  # (B, Z), the standard deviation (not the variance)
    z = mu + std * eps  # (K, B, Z) or (B, Z)
    return z, (std, eps)


def reparameterize_backward(dz, cache):
    """Backward of z = mu + exp(logvar / 2) · eps.

    dmu     = Σ_K dz,
    dlogvar = Σ_K dz · eps · std / 2          (∂std/∂logvar = std / 2),
    where Σ_K sums over the K samples of each example (K = 1 when eps is (B, Z)): every
    sample adds its gradient.

    dz : eps's shape  ->  dmu, dlogvar : (B, Z), new arrays.
    """
    std, eps = cache
    dz = dz.reshape(-1, *std.shape)  # (K, B, Z)
    dmu = dz.sum(axis=0)  # (B, Z)
    dlogvar = (dz * eps.reshape(dz.shape)).sum(axis=0)  # (B, Z)
    dlogvar *= 0.5 * std
    return dmu, dlogvar


def logsumexp(a, axis):
    """log Σ exp(a) along ``axis``, shifted by the max so that nothing overflows.

    An all -inf slice gives -inf (the shift is taken as 0 where the max is not finite)."""
    a_max = a.max(axis=axis, keepdims=True)
    a_max = np.where(np.isfinite(a_max), a_max, 0)
    with np.errstate(divide="ignore"):  # log 0 = -inf, the answer for an all -inf slice
        return np.log(np.exp(a - a_max).sum(axis=axis)) + np.squeeze(a_max, axis=axis)


# ---------------------------------------------------------------------------- full covariance
# q(z|x) = N(mu, Σ) with Σ = L Lᵀ, L lower triangular with a positive diagonal (a Cholesky
# factor). The encoder emits mu, logvar (log L_ii², clamped like the diagonal q's) and the
# Z(Z-1)/2 entries below the diagonal; with those entries 0, this is the diagonal q exactly.


def cholesky_forward(logvar, offdiag):
    """The Cholesky factor L of Σ = L Lᵀ from the encoder's heads.

    L_ii = exp(logvar_i / 2)   (positive, so Σ is positive definite; logvar_i = log L_ii²),
    L_ij = offdiag_m for i > j, m running over np.tril_indices(Z, -1) (row by row),
    L_ij = 0 for i < j.

    logvar : (B, Z), offdiag : (B, Z(Z-1)/2)  ->  L : (B, Z, Z), cache.
    """
    B, Z = logvar.shape
    rows, cols = np.tril_indices(Z, -1)
    L = np.zeros((B, Z, Z), dtype=np.result_type(logvar, offdiag))  # (B, Z, Z)
    diag = np.exp(0.5 * logvar)  # (B, Z), L_ii
    L[:, np.arange(Z), np.arange(Z)] = diag
    L[:, rows, cols] = offdiag
    return L, (diag, rows, cols)


def cholesky_backward(dL, cache):
    """Backward of ``cholesky_forward``.

    dlogvar_i = dL_ii · L_ii / 2     (∂L_ii/∂logvar_i = L_ii / 2),
    doffdiag_m = dL_ij for the m-th (i > j);  dL above the diagonal is no parameter's: dropped.

    dL : (B, Z, Z)  ->  dlogvar : (B, Z),  doffdiag : (B, Z(Z-1)/2).
    """
    diag, rows, cols = cache
    Z = diag.shape[-1]
    dlogvar = dL[:, np.arange(Z), np.arange(Z)] * (0.5 * diag)  # (B, Z)
    return dlogvar, dL[:, rows, cols]


def full_reparameterize_forward(mu, L, eps):
    """z = mu + L eps: a draw of N(mu, L Lᵀ) from eps ~ N(0, I), since Cov(L eps) = L I Lᵀ.

    mu : (B, Z), L : (B, Z, Z), eps : (B, Z) or (K, B, Z)  ->  z : eps's shape, cache.
    """
    z = mu + np.einsum("bij,...bj->...bi", L, eps)  # (K, B, Z) or (B, Z)
    return z, (L, eps)


def full_reparameterize_backward(dz, cache):
    """Backward of z = mu + L eps, summed over the K samples of each example.

    dmu = Σ_K dz,   dL = tril(Σ_K dz epsᵀ)   (∂z_i/∂L_ij = eps_j; L's upper triangle is 0 by
    construction, so its gradient is masked away).

    dz : eps's shape  ->  dmu : (B, Z),  dL : (B, Z, Z), lower triangular.
    """
    L, eps = cache
    dz = dz.reshape(-1, *L.shape[:2])  # (K, B, Z)
    eps = eps.reshape(dz.shape)  # (K, B, Z)
    dL = np.einsum("kbi,kbj->bij", dz, eps)  # (B, Z, Z): Σ_K dz epsᵀ
    return dz.sum(axis=0), np.tril(dL)


def kl_full_standard_normal(mu, L):
    """KL(N(mu, L Lᵀ) ‖ N(0, I)) in closed form, and its gradients.

    kl  = ½ [tr(L Lᵀ) + muᵀmu − Z − log det(L Lᵀ)],   tr(L Lᵀ) = Σ_ij L_ij²,
          log det(L Lᵀ) = 2 Σ_i log L_ii        (the Gaussian KL with Σ = L Lᵀ, Σ_p = I),
    dmu = mu,
    dL  = L − diag(1 / L_ii)                     (lower triangular, like L).
    With L diagonal, L_ii = e^{logvar_i/2}, this is ``kl_standard_normal``.

    mu : (B, Z), L : (B, Z, Z) lower triangular, positive diagonal  ->  kl : (B,), dmu, dL.
    """
    Z = mu.shape[-1]
    diag = np.diagonal(L, axis1=-2, axis2=-1)  # (B, Z)
    kl = 0.5 * ((L * L).sum(axis=(-2, -1)) + (mu * mu).sum(axis=-1) - Z
                - 2 * np.log(diag).sum(axis=-1))  # (B,)
    dL = L.copy()
    dL[..., np.arange(Z), np.arange(Z)] -= 1 / diag
    return kl, mu, dL


def gaussian_full_log_density(z, mu, L):
    """log N(z | mu, L Lᵀ), and its gradients, per sample.

    u = L⁻¹ (z − mu)                              (a triangular solve),
    logp = −½ [Z log 2π + 2 Σ_i log L_ii + uᵀu],
    dz  = −L⁻ᵀ u,   dmu = +L⁻ᵀ u,
    dL  = tril(L⁻ᵀ u uᵀ) − diag(1 / L_ii)        (from d(uᵀu) = −2 uᵀ L⁻¹ dL u).

    z : (K, B, Z) or (B, Z), mu : (B, Z), L : (B, Z, Z)  ->  logp : (K, B) or (B,), and dz,
    dmu (z's shape), dL ((K, B, Z, Z) or (B, Z, Z)), one per sample (the caller sums over K).
    """
    Z = mu.shape[-1]
    Ls = np.broadcast_to(L, (*z.shape[:-1], Z, Z))  # (K, B, Z, Z)
    u = np.linalg.solve(Ls, (z - mu)[..., None])  # (K, B, Z, 1)
    diag = np.diagonal(L, axis1=-2, axis2=-1)  # (B, Z)
    logp = -0.5 * (Z * LOG_2PI + 2 * np.log(diag).sum(axis=-1) + (u * u).sum(axis=(-2, -1)))
    v = np.linalg.solve(np.swapaxes(Ls, -2, -1), u)  # (K, B, Z, 1): L⁻ᵀ u
    dL = np.tril(v * np.swapaxes(u, -2, -1))  # (K, B, Z, Z): L⁻ᵀ u uᵀ, lower part
    dL[..., np.arange(Z), np.arange(Z)] -= 1 / diag
    return logp, -v[..., 0], v[..., 0], dL
