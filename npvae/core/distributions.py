"""The terminal nodes of the ELBO: likelihoods, the KL, a log-density and the sampler.

Each loss-like function returns its per-example value, summed over the last axis (the data or
latent dimension), together with the gradient *of that sum* with respect to each input. The
leading axes, (B,) or (K, B), are carried through, and the model divides by B (and K) where it
averages. All values are in nats.
"""

import math

import numpy as np

from .layers import sigmoid, softplus

LOG_2PI = math.log(2 * math.pi)  # a Python float, so float32 arrays stay float32


def bernoulli_nll(logits, x, need_grad=True, fused=False):
    """-log Bernoulli(x | sigmoid(logits)), summed over D, and its gradient.

    nll     = Σ_D softplus(logits) - x·logits,
    dlogits = sigmoid(logits) - x          (the sigmoid fused with the cross-entropy).

    softplus(l) = log(1 + e^l) is computed stably (``layers.softplus``), so the loss is finite
    and exact for any logits: no probability is clipped or logged.
    ``fused=True`` computes the same numbers with ``bernoulli_nll_fused``, its fast twin.

    logits : (..., D) array, x : (..., D) array with values in [0, 1]
    ->  nll : (...,) array,  dlogits : (..., D) array (None if not ``need_grad``).
    """
    if fused:
        return bernoulli_nll_fused(logits, x, need_grad)
    nll = (softplus(logits) - x * logits).sum(axis=-1)  # (...,)
    return nll, (sigmoid(logits) - x if need_grad else None)


def bernoulli_nll_fused(logits, x, need_grad=True):
    """The fast twin of ``bernoulli_nll``: the same value and gradient, one exp per element.

    With a = |logits| and e = exp(-a), softplus(l) = max(l, 0) + log1p(e) and max(l, 0) =
    ½(a + l), so  nll = Σ_D ½a + (½ - x)·l + log1p(e).  log1p(e) is taken as log(u) + δ with
    u = 1 + e and δ = e - (u - 1), what rounding 1 + e lost; the logs are summed as the log of
    a product (``sum_log``), one log per few hundred elements. sigmoid(l) = 1/u for l ≥ 0 and
    e/u below, from the same e and u. tests/test_fast_paths.py holds it to the textbook form.
    In floating point e is in [0, 1] (it underflows to 0 beyond a ≈ 104 in float32) and u in
    [1, 2] (u = 1 exactly once e < ulp(1)/2; then δ = e carries all of log1p(e)).

    logits, x : (..., D) arrays  ->  nll : (...,),  dlogits : (..., D) (None if not ``need_grad``).
    """
    a = np.abs(logits)  # (..., D)
    e = np.exp(-a)  # (..., D), in [0, 1]
    u = 1 + e  # (..., D), in [1, 2]
    # log1p(e) = log(u) + log1p(δ / u), and |δ| ≤ ulp(1) / 2, so log1p(δ / u) = δ to within
    # |δ|(1 - 1/u) ≤ ulp(1) / 4: as accurate as np.log1p(e), which is 7× slower than log.
    terms = (0.5 - x) * logits  # (..., D)
    a *= 0.5
    terms += a  # ½|l| + (½ - x)·l: the two cancel exactly where the prediction is right
    delta = u - 1
    np.subtract(e, delta, out=delta)  # δ
    terms += delta  # ½|l| + (½ - x)·l + δ
    nll = terms.sum(axis=-1) + sum_log(u)  # Σ_D log1p(e) = Σ_D [log(u) + δ]
    if not need_grad:  # forward only (evaluation)
        return nll, None
    probs = np.maximum(e, logits >= 0) / u  # sigmoid(l): 1/u for l ≥ 0, else e/u (e ≤ 1)
    return nll, probs - x


# The most halvings in sum_log. After f of them an entry is a product of at most 2^(f+1)
# factors u ∈ [1, 2] (the first entry also takes the odd ones out), so with 8 it stays below
# 2⁵¹², inside float64's range (up to 2¹⁰²⁴), for any D.
SUM_LOG_FOLDS = 8


def sum_log(u):
    """Σ log(u) over the last axis, for u in [1, 2], computed as log Π u: (...,) in u's dtype.

    A logarithm costs as much as a dozen multiplications, so the product is formed first,
    in float64, by folding each row in halves (u[:w] · u[w:2w], the odd last entry into the
    first), at most ``SUM_LOG_FOLDS`` times, and only the few entries left are logged. The
    first fold multiplies two float32 numbers into a float64, which is exact; each later
    fold rounds by at most 2⁻⁵³ (relative), so the result is correct to float32's last digit.
    Textbook form: np.log(u).sum(axis=-1) (checked in tests/test_fast_paths.py).
    """
    n = u.shape[-1]
    if n < 2:
        return np.log(u).sum(axis=-1)
    w = n // 2
    p = np.multiply(u[..., :w], u[..., w:2 * w], dtype=np.float64)  # (..., n // 2)
    if n % 2:
        p[..., :1] *= u[..., -1:]
    for _ in range(SUM_LOG_FOLDS - 1):
        n = p.shape[-1]
        if n < 2:
            break
        w = n // 2
        folded = p[..., :w] * p[..., w:2 * w]
        if n % 2:
            folded[..., :1] *= p[..., -1:]
        p = folded
    return np.log(p).sum(axis=-1).astype(u.dtype)


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
    """z = mu + σ · eps with σ = exp(logvar / 2), the reparameterization trick.

    The randomness is the input eps ~ N(0, I), so z is a deterministic, differentiable function
    of (mu, logvar) and the forward can be gradient-checked with eps held fixed.

    mu, logvar : (B, Z) arrays, eps : (B, Z) or (K, B, Z) array  ->  z : eps's shape.
    """
    sigma = np.exp(0.5 * logvar)  # (B, Z), the standard deviation (not the variance)
    z = mu + sigma * eps  # (K, B, Z) or (B, Z)
    return z, (sigma, eps)


def reparameterize_backward(dz, cache):
    """Backward of z = mu + exp(logvar / 2) · eps.

    dmu     = Σ_K dz,
    dlogvar = Σ_K dz · eps · σ / 2          (∂σ/∂logvar = σ / 2),
    where Σ_K sums over the sample axis when eps is (K, B, Z): every sample adds its gradient.

    dz : eps's shape  ->  dmu, dlogvar : (B, Z).
    """
    sigma, eps = cache
    dlogvar = dz * eps  # (K, B, Z) or (B, Z)
    if dz.ndim == 3:
        dmu, dlogvar = dz.sum(axis=0), dlogvar.sum(axis=0)  # (B, Z)
    else:
        dmu = dz.copy()  # a new array: the caller adds the KL's gradient to it
    dlogvar *= 0.5 * sigma
    return dmu, dlogvar


def logsumexp(a, axis):
    """log Σ exp(a) along ``axis``, shifted by the max so that nothing overflows."""
    a_max = a.max(axis=axis, keepdims=True)
    a_max = np.where(np.isfinite(a_max), a_max, 0)
    return np.log(np.exp(a - a_max).sum(axis=axis)) + np.squeeze(a_max, axis=axis)
