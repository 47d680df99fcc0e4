"""The terminal nodes of the ELBO: likelihoods, the KL, a log-density and the sampler.

Each loss-like function returns its per-example value, summed over the last axis (the data or
latent dimension), together with the gradient *of that sum* with respect to each input. The
leading axes, (B,) or (K, B), are carried through, and the model divides by B (and K) where it
averages. All values are in nats.
"""

import math

import numpy as np

LOG_2PI = math.log(2 * math.pi)  # a Python float, so float32 arrays stay float32


def bernoulli_nll(logits, x, need_grad=True):
    """-log Bernoulli(x | sigmoid(logits)), summed over D, and its gradient.

    nll     = Σ_D softplus(logits) - x·logits,
    dlogits = sigmoid(logits) - x          (the sigmoid fused with the cross-entropy).

    Both are computed stably from one e = exp(-|logits|) ∈ (0, 1], as ``layers.softplus`` and
    ``layers.sigmoid`` compute them: softplus(l) = max(l, 0) + log(1 + e), and sigmoid(l) =
    1 / (1 + e) for l ≥ 0, e / (1 + e) below. So the loss is finite and exact for any logits:
    no probability is clipped or logged, and nothing overflows.

    e below the smallest normal float (1.2e-38 in float32, where |l| > 87.3) is set to 0, so
    that neither e nor sigmoid(l) is ever subnormal, where arithmetic is tens of times slower
    on some CPUs (docs/performance.md): a change below 1.2e-38 per entry.

    logits : (..., D) array, x : (..., D) array with values in [0, 1]
    ->  nll : (...,) array,  dlogits : (..., D) array (None if not ``need_grad``).
    """
    e = np.exp(-np.abs(logits))  # (..., D), in [0, 1]
    np.copyto(e, 0, where=e < np.finfo(e.dtype).smallest_normal)  # no subnormal e
    nll = (np.maximum(logits, 0) + np.log1p(e) - x * logits).sum(axis=-1)  # (...,)
    return nll, (np.where(logits >= 0, 1, e) / (1 + e) - x if need_grad else None)


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
    return np.log(np.exp(a - a_max).sum(axis=axis)) + np.squeeze(a_max, axis=axis)
