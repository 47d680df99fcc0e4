"""docs/derivations.md is executed (issue 22.12): its python blocks run as one script, each
result is checked against npvae's functions, scipy and Monte Carlo, and every number the text
quotes in bold is what the blocks compute."""

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import npvae
from npvae.core import distributions as dist
from npvae.study import ppca

DOC = (Path(__file__).resolve().parents[1] / "docs" / "derivations.md").read_text()


@pytest.fixture(scope="module")
def ns():
    """The namespace the page's python blocks leave behind, run in order."""
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) >= 4
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/derivations.md", "exec"), namespace)
    return namespace


def quoted(label):
    """The number the text quotes in bold after ``label`` (a regex), "−" read as minus."""
    match = re.search(r"\*\*" + label + r" = (−?\d+(?:\.\d+)?)\*\*", DOC)
    assert match, label
    return float(match.group(1).replace("−", "-"))


def _linear_vae(ns):
    """npvae's linear-Gaussian VAE with the page's decoder, and an encoder that emits the page's
    q = N(m, diag s2) whatever x is."""
    model = npvae.VAE(ns["D"], hidden_dims=(), latent_dim=ns["Z"], likelihood="gaussian",
                      sigma=ns["sigma"], dtype=np.float64, seed=0)
    p = model.params
    p["out.W"][...], p["out.b"][...] = ns["V"], ns["b"]
    p["mu.W"][...], p["mu.b"][...] = 0.0, ns["m"]
    p["logvar.W"][...], p["logvar.b"][...] = 0.0, np.log(ns["s2"])
    return model


def test_the_elbo_identity_holds_and_matches_npvae_and_scipy(ns):
    assert ns["log_px"] == pytest.approx(ns["elbo"] + ns["kl_post"], abs=1e-12)
    model = _linear_vae(ns)
    log_px, elbo, kl = ppca.elbo_identity(model, ns["x"][None])
    assert log_px[0] == pytest.approx(ns["log_px"], abs=1e-10)
    assert elbo[0] == pytest.approx(ns["elbo"], abs=1e-10)
    assert kl[0] == pytest.approx(ns["kl_post"], abs=1e-10)
    ref = scipy.stats.multivariate_normal(ns["b"], ns["C"]).logpdf(ns["x"])
    assert ns["log_px"] == pytest.approx(ref, abs=1e-12)
    # The ELBO's expectation, by Monte Carlo through npvae's own loss (closed-form KL).
    eps = np.random.default_rng(0).standard_normal((100_000, 1, ns["Z"]))
    per_sample = -model.nll(ns["x"][None], eps)[:, 0] - ns["kl_prior"]
    se = per_sample.std() / np.sqrt(len(per_sample))
    assert abs(per_sample.mean() - ns["elbo"]) < 5 * se
    # The posterior the KL is taken to is Bayes' rule's, against npvae's PPCA posterior.
    mean, cov = ppca.ppca_posterior(ns["x"][None], *ppca.linear_vae_marginal(model))
    np.testing.assert_allclose(mean[0], ns["post_mean"], atol=1e-12)
    np.testing.assert_allclose(cov, ns["post_cov"], atol=1e-12)


def test_the_quoted_identity_numbers_are_the_computed_ones(ns):
    assert quoted(r"log p\(x\)") == pytest.approx(ns["log_px"], abs=5e-5)
    assert quoted("ELBO") == pytest.approx(ns["elbo"], abs=5e-5)
    assert quoted(r"KL\(q ‖ p\(z\|x\)\)") == pytest.approx(ns["kl_post"], abs=5e-5)


def test_the_gaussian_decoder_is_a_squared_error_with_kl_weight_two_c(ns):
    x, x_hat, sigma = ns["x"], ns["x_hat"], ns["sigma"]
    assert ns["nll"] == pytest.approx(dist.gaussian_nll(x_hat, x, sigma)[0], abs=1e-12)
    assert ns["nll"] == pytest.approx(-scipy.stats.norm.logpdf(x, x_hat, sigma).sum(), abs=1e-12)
    # 2c (nll + KL) = ‖x − x̂‖² + 2c KL + 2c (D/2) log 2πc, c = σ², for any KL value.
    for kl in (0.0, 0.3, 4.0):
        const = 2 * sigma**2 * ns["D"] / 2 * np.log(2 * np.pi * sigma**2)
        assert 2 * sigma**2 * (ns["nll"] + kl) == pytest.approx(
            np.sum((x - x_hat) ** 2) + ns["kl_weight"] * kl + const, abs=1e-12)
    assert ns["c"] == sigma**2 and ns["kl_weight"] == 2 * ns["c"]
    # σ*² minimises the NLL over σ² (numerically, against the closed form).
    best = scipy.optimize.minimize_scalar(
        lambda v: dist.gaussian_nll(x_hat, x, np.sqrt(v))[0], bounds=(1e-4, 10), method="bounded",
        options={"xatol": 1e-10})
    assert best.x == pytest.approx(ns["sigma2_best"], rel=1e-5)
    assert quoted("c") == pytest.approx(ns["c"], abs=1e-12)
    assert quoted("kl_weight") == pytest.approx(ns["kl_weight"], abs=1e-12)
    assert quoted("σ\\*²") == pytest.approx(ns["sigma2_best"], abs=1e-12)


def test_the_kl_closed_forms_against_npvae_and_monte_carlo(ns):
    mu, L = ns["mu_q"], ns["L_q"]
    cov = L @ L.T
    full = dist.kl_full_standard_normal(mu[None], L[None])[0][0]
    assert ns["kl_full"] == pytest.approx(full, abs=1e-12)
    assert ns["kl_full"] == pytest.approx(ns["kl_gaussians"](mu, cov, np.zeros(2), np.eye(2)),
                                          abs=1e-12)
    logvar = 2 * np.log(np.diag(L))
    assert ns["kl_diag"] == pytest.approx(dist.kl_standard_normal(mu, logvar)[0], abs=1e-12)
    # Step 1 between two arbitrary Gaussians, against E_q[log q − log p] with scipy's densities.
    q, p = scipy.stats.multivariate_normal(mu, cov), scipy.stats.multivariate_normal(
        ns["post_mean"], ns["post_cov"])
    z = q.rvs(200_000, random_state=1)
    log_ratio = q.logpdf(z) - p.logpdf(z)
    se = log_ratio.std() / np.sqrt(len(log_ratio))
    exact = ns["kl_gaussians"](mu, cov, ns["post_mean"], ns["post_cov"])
    assert abs(log_ratio.mean() - exact) < 5 * se
    # The KL to the posterior in the first section is step 1 with a diagonal q.
    assert ns["kl_post"] == pytest.approx(ns["kl_gaussians"](
        ns["m"], np.diag(ns["s2"]), ns["post_mean"], ns["post_cov"]), abs=1e-12)


def test_the_quoted_kl_numbers_are_the_computed_ones(ns):
    assert quoted(r"KL\(N\(μ, L Lᵀ\) ‖ N\(0, I\)\)") == pytest.approx(ns["kl_full"], abs=5e-5)
    match = re.search(r"with the off-diagonal 0\.6 removed \*\*([\d.]+)\*\*", DOC)
    assert float(match.group(1)) == pytest.approx(ns["kl_diag"], abs=5e-5)
    assert ns["kl_full"] - ns["kl_diag"] == pytest.approx(0.5 * 0.6**2, abs=1e-12)
    cov = ns["L_q"] @ ns["L_q"].T
    rho = re.search(r"has correlation ([\d.]+)", DOC).group(1)
    assert float(rho) == pytest.approx(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), abs=5e-3)
