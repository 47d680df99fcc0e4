"""The loss values themselves, against independent closed forms.

A finite-difference check proves that a backward matches its forward. It cannot see a forward
that is wrong together with its backward: a KL without its ½, differentiated faithfully, passes
every gradient check. These checks compare what npvae computes with references computed another
way (scipy.stats densities, Monte Carlo estimates, the exact marginal of a linear-Gaussian model),
so that such a pair fails here.

Each check is an ``ObjectiveCheck``: npvae's value, the reference, and a tolerance, either a
rounding tolerance (closed form against closed form) or five standard errors of the Monte Carlo
estimate, measured from the same samples.

Symbols: B examples, D data dimensions, Z latent dimensions, N Monte Carlo samples.
"""

import dataclasses
import math

import numpy as np
import scipy.stats

from ..core import distributions as dist
from ..study.ppca import linear_vae_marginal, ppca_log_likelihood
from ..core.vae import VAE

MC_SAMPLES = 200_000  # Monte Carlo samples per estimate; five standard errors are ~1e-2 nats
ROUNDING_TOL = 1e-9  # relative, for closed form against closed form in float64


@dataclasses.dataclass
class ObjectiveCheck:
    """npvae's value of a quantity against an independent reference."""

    name: str
    formula: str  # what is compared, in words and symbols
    value: float
    reference: float
    tol: float  # absolute

    @property
    def error(self):
        return abs(self.value - self.reference)

    @property
    def ok(self):
        return bool(self.error <= self.tol)


def _rounding(name, formula, value, reference):
    return ObjectiveCheck(name, formula, float(value), float(reference),
                          ROUNDING_TOL * max(1.0, abs(float(reference))))


def _monte_carlo(name, formula, value, samples):
    """``value`` against the mean of ``samples`` (N,), within five standard errors."""
    se = samples.std() / math.sqrt(len(samples))
    return ObjectiveCheck(name, formula, float(value), float(samples.mean()), 5 * se)


def likelihood_checks(rng):
    """The three NLLs against scipy.stats' log-densities."""
    B, D = 4, 6
    logits, mean, logvar = (3 * rng.standard_normal((B, D)) for _ in range(3))
    bits = (rng.uniform(size=(B, D)) < 0.5).astype(np.float64)
    x = rng.standard_normal((B, D))
    probs = 1 / (1 + np.exp(-logits))
    bernoulli_ref = -scipy.stats.bernoulli.logpmf(bits, probs).sum()
    checks = [_rounding("bernoulli_nll",
                        "Σ NLL = -Σ log Bernoulli(x | sigmoid(logits)), scipy.stats.bernoulli",
                        dist.bernoulli_nll(logits, bits)[0].sum(), bernoulli_ref)]
    checks.append(_rounding(
        "gaussian_nll", "Σ NLL = -Σ log N(x | mean, 0.7²), scipy.stats.norm",
        dist.gaussian_nll(mean, x, 0.7)[0].sum(), -scipy.stats.norm.logpdf(x, mean, 0.7).sum()))
    x3, mean3 = rng.standard_normal((2, B, D)), rng.standard_normal((2, B, D))  # (K, B, D)
    checks.append(_rounding(
        "gaussian_nll, (K, B, D)", "the same, with K samples in a leading axis",
        dist.gaussian_nll(mean3, x3, 0.7)[0].sum(), -scipy.stats.norm.logpdf(x3, mean3, 0.7).sum()))
    checks.append(_rounding(
        "gaussian_nll_learned", "Σ NLL = -Σ log N(x | mean, e^logvar), scipy.stats.norm",
        dist.gaussian_nll_learned(mean, logvar, x)[0].sum(),
        -scipy.stats.norm.logpdf(x, mean, np.exp(logvar / 2)).sum()))
    return checks


def kl_and_sampler_checks(rng):
    """The closed-form KL against a Monte Carlo estimate of E_q[log q(z) - log p(z)] with
    scipy's densities, and the sampler's moments against mu and exp(logvar)."""
    mu, logvar = np.array([0.8, -1.5, 0.3]), np.array([0.5, -1.0, 1.2])  # (Z,)
    eps = rng.standard_normal((MC_SAMPLES, 3))  # (N, Z)
    z, _ = dist.reparameterize_forward(mu[None], logvar[None], eps)  # (N, Z)
    sigma = np.exp(logvar / 2)  # the standard deviation, from the definition
    log_ratio = (scipy.stats.norm.logpdf(z, mu, sigma) - scipy.stats.norm.logpdf(z)).sum(axis=1)
    kl, _, _ = dist.kl_standard_normal(mu, logvar)
    checks = [_monte_carlo("kl_standard_normal", "KL(q ‖ N(0, I)) = E_q[log q(z) - log p(z)], "
                           "Monte Carlo with scipy.stats.norm", kl, log_ratio)]
    for j in range(len(mu)):
        checks.append(_monte_carlo(f"reparameterize mean[{j}]", "E[z] = mu", mu[j], z[:, j]))
        centred = (z[:, j] - mu[j]) ** 2
        checks.append(_monte_carlo(f"reparameterize var[{j}]", "Var[z] = exp(logvar)",
                                   np.exp(logvar[j]), centred))
    return checks


def full_covariance_checks(rng):
    """The full-covariance q: the closed-form KL against Monte Carlo with scipy's
    multivariate normal, its log-density against scipy's, and the sampler z = mu + L eps's
    covariance against L Lᵀ, entry by entry (a sampler using Lᵀ, or L², fails here)."""
    mu = np.array([0.8, -1.5, 0.3])  # (Z,)
    L, _ = dist.cholesky_forward(np.array([[0.5, -1.0, 1.2]]), np.array([[0.9, -0.6, 0.4]]))
    cov = L[0] @ L[0].T  # (Z, Z), Σ by its definition
    eps = rng.standard_normal((MC_SAMPLES // 4, 1, 3))  # (N, 1, Z)
    z, _ = dist.full_reparameterize_forward(mu[None], L, eps)  # (N, 1, Z)
    z = z[:, 0]  # (N, Z)
    q, prior = scipy.stats.multivariate_normal(mu, cov), scipy.stats.multivariate_normal(np.zeros(3))
    log_ratio = q.logpdf(z) - prior.logpdf(z)  # (N,)
    kl = dist.kl_full_standard_normal(mu[None], L)[0][0]
    checks = [_monte_carlo("kl_full_standard_normal", "KL(N(mu, LLᵀ) ‖ N(0, I)) = E_q[log q - "
                           "log p], Monte Carlo with scipy.stats.multivariate_normal", kl,
                           log_ratio)]
    logp = dist.gaussian_full_log_density(z[:3], mu, L[0])[0]  # (3,)
    checks.append(_rounding("gaussian_full_log_density", "Σ log N(z | mu, LLᵀ), scipy.stats."
                            "multivariate_normal", logp.sum(), q.logpdf(z[:3]).sum()))
    for i, j in ((0, 0), (1, 0), (2, 1), (2, 2)):
        prod = (z[:, i] - mu[i]) * (z[:, j] - mu[j])  # (N,)
        checks.append(_monte_carlo(f"full_reparameterize cov[{i},{j}]", "Cov[z] = L Lᵀ",
                                   cov[i, j], prod))
    return checks


def exact_posterior_vae(D=5, Z=2, sigma=0.8, seed=0):
    """A linear-Gaussian VAE (float64) whose encoder computes the exact posterior p(z|x).

    Its decoder's rows are orthogonal, so that M = W Wᵀ + σ² I is diagonal and the posterior
    N((x - b) Wᵀ M⁻¹, σ² M⁻¹) has a diagonal covariance, which the encoder then represents
    exactly: mu.W = Wᵀ M⁻¹, mu.b = -b Wᵀ M⁻¹, logvar.W = 0, logvar.b = log diag(σ² M⁻¹).
    With q = p(z|x), every importance weight equals p(x): log p(x) = ELBO = IWAE_K.
    """
    rng = np.random.default_rng(seed)
    model = VAE(D, hidden_dims=(), latent_dim=Z, likelihood="gaussian", sigma=sigma,
                dtype=np.float64, seed=seed)
    q, _ = np.linalg.qr(rng.standard_normal((D, Z)))  # (D, Z), orthonormal columns
    W = q.T * np.array([2.0, 0.7])[:Z, None]  # (Z, D): out.W, rows orthogonal
    b = rng.standard_normal(D)
    m_diag = (W * W).sum(axis=1) + sigma**2  # (Z,), M = W Wᵀ + σ² I is diagonal
    p = model.params
    p["out.W"][...], p["out.b"][...] = W, b
    p["mu.W"][...] = W.T / m_diag  # (D, Z)
    p["mu.b"][...] = -(b @ W.T) / m_diag
    p["logvar.W"][...] = 0.0
    p["logvar.b"][...] = np.log(sigma**2 / m_diag)
    return model


def model_objective_checks(rng):
    """A linear-Gaussian VAE with the exact posterior as its encoder: the IWAE bound (any K)
    equals the exact log p(x) of PPCA, and the ELBO does too, up to its Monte Carlo error."""
    model = exact_posterior_vae()
    x = rng.standard_normal((3, model.input_dim))  # (B, D)
    log_px = ppca_log_likelihood(x, *linear_vae_marginal(model))  # (B,)
    eps = rng.standard_normal((4, 3, model.latent_dim))  # (K, B, Z)
    iwae, _, _ = model.loss_and_grads(x, eps, objective="iwae")
    checks = [_rounding("IWAE bound, K = 4", "-(1/B) Σ_b log (1/K) Σ_k w_kb = -mean log p(x) "
                        "(PPCA), w = p(x) when q is the posterior", iwae, -log_px.mean())]
    n = MC_SAMPLES // 20
    eps = rng.standard_normal((n, 1, model.latent_dim))  # (N, 1, Z): one example, N samples
    _, _, stats = model.loss_and_grads(x[:1], eps)
    per_sample = -model.nll(x[:1], eps)[:, 0] - stats["kl"]  # (N,): log p(x|z_n) - KL
    checks.append(_monte_carlo("ELBO, closed-form KL", "E_q log p(x|z) - KL(q ‖ p(z)) = log p(x) "
                               "(PPCA) when q is the posterior", log_px[0], per_sample))
    return checks


def objective_checks(seed=0):
    """Every objective check: the likelihoods, the KL and the sampler, the whole bound."""
    rng = np.random.default_rng(seed)
    return (likelihood_checks(rng) + kl_and_sampler_checks(rng) + model_objective_checks(rng)
            + full_covariance_checks(rng))


def report(checks):
    """One row per check: npvae's value, the reference, their difference, the tolerance."""
    header = f"{'quantity':<28}{'npvae':>15}{'reference':>15}{'|diff|':>11}{'tol':>10}"
    lines = ["", "objective checks: the loss values against independent references", header,
             "-" * len(header)]
    for c in checks:
        lines.append(f"{c.name:<28}{c.value:>15.8g}{c.reference:>15.8g}{c.error:>11.2e}"
                     f"{c.tol:>10.1e}  {'ok' if c.ok else 'FAIL'}   {c.formula}")
    failed = sum(not c.ok for c in checks)
    lines.append(f"{len(checks)} objective checks, {failed} failed")
    return "\n".join(lines)
