"""Probabilistic PCA in closed form, and the exact marginal of a linear-Gaussian VAE."""

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import npvae
from npvae import VAE
from npvae.study import ppca
from npvae.verify.gradcheck import numeric_grad
from npvae.study.ppca import (
    fit_ppca,
    linear_vae_marginal,
    low_rank_data,
    ppca_log_likelihood,
    ppca_posterior,
    principal_angles,
)


@pytest.mark.parametrize("D, Z, sigma2", [(5, 2, 0.3), (8, 1, 2.0), (6, 5, 1e-3)])
def test_log_likelihood_equals_scipy_dense_gaussian(D, Z, sigma2):
    rng = np.random.default_rng(D)
    X, mean, W = rng.standard_normal((7, D)), rng.standard_normal(D), rng.standard_normal((D, Z))
    expected = multivariate_normal(mean, W @ W.T + sigma2 * np.eye(D)).logpdf(X)
    np.testing.assert_allclose(ppca_log_likelihood(X, mean, W, sigma2), expected, rtol=1e-10)


def test_ml_fit_attains_the_closed_form_maximum():
    # At the ML solution, mean log p = -½ [D log 2π + Σ_{j≤Z} log λ_j + (D - Z) log σ² + D]
    # (Tipping & Bishop 1999, eq. 4 with C's eigenvalues λ_1..λ_Z, σ²..σ², and tr C⁻¹S = D).
    rng = np.random.default_rng(0)
    X, _, _ = low_rank_data(300, 7, 2, sigma=0.5, rng=rng)
    mean, W, sigma2 = fit_ppca(X, 2)
    lam = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    assert sigma2 == pytest.approx(lam[2:].mean(), rel=1e-12)
    best = -0.5 * (7 * math.log(2 * math.pi) + np.log(lam[:2]).sum() + 5 * math.log(sigma2) + 7)
    assert ppca_log_likelihood(X, mean, W, sigma2).mean() == pytest.approx(best, rel=1e-12)
    # W Wᵀ + σ² I reproduces the top-Z eigenvalues of the sample covariance exactly.
    C_eigs = np.sort(np.linalg.eigvalsh(W @ W.T + sigma2 * np.eye(7)))[::-1]
    np.testing.assert_allclose(C_eigs[:2], lam[:2], rtol=1e-10)


def test_ml_fit_is_a_stationary_point_and_beats_perturbations():
    rng = np.random.default_rng(1)
    X, _, _ = low_rank_data(200, 5, 2, sigma=0.3, rng=rng)
    mean, W, sigma2 = fit_ppca(X, 2)
    s2 = np.array([sigma2])

    def f():
        return ppca_log_likelihood(X, mean, W, s2[0]).mean()

    assert np.abs(numeric_grad(f, W)).max() < 1e-6
    assert np.abs(numeric_grad(f, s2)).max() < 1e-6
    best = f()
    W *= 1.1  # the same check sees a gradient away from the optimum
    assert np.abs(numeric_grad(f, W)).max() > 1e-2
    W /= 1.1
    for _ in range(5):
        dW, ds = 0.05 * rng.standard_normal(W.shape), 0.05 * rng.standard_normal()
        assert ppca_log_likelihood(X, mean, W + dW, sigma2 * math.exp(ds)).mean() < best
        assert ppca_log_likelihood(X, mean + dW[:, 0], W, sigma2).mean() < best
    # p(x) depends on W only through W Wᵀ: any rotation W R gives the same likelihood.
    R, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    assert ppca_log_likelihood(X, mean, W @ R, sigma2).mean() == pytest.approx(best, rel=1e-12)


def test_ml_fit_recovers_the_true_subspace_and_noise():
    rng = np.random.default_rng(2)
    X, true_mean, true_W = low_rank_data(4000, 10, 3, sigma=0.2, rng=rng)
    mean, W, sigma2 = fit_ppca(X, 3)
    assert principal_angles(W, true_W).max() < 2.0
    assert sigma2 == pytest.approx(0.04, rel=0.1)
    np.testing.assert_allclose(mean, true_mean, atol=0.1)


def test_principal_angles():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 3))
    np.testing.assert_allclose(principal_angles(A, A @ rng.standard_normal((3, 3))), 0,
                               atol=1e-6)
    e = np.eye(6)
    np.testing.assert_allclose(principal_angles(e[:, :2], e[:, 2:4]), [90, 90])
    np.testing.assert_allclose(principal_angles(e[:, :1], (e[:, :1] + e[:, 1:2])), [45])


def test_posterior_equals_gaussian_conditioning():
    # Joint of (z, x): cov [[I, Wᵀ], [W, C]], so z | x ~ N(Wᵀ C⁻¹ (x - m), I - Wᵀ C⁻¹ W).
    rng = np.random.default_rng(4)
    X, mean, W = rng.standard_normal((5, 6)), rng.standard_normal(6), rng.standard_normal((6, 2))
    C_inv = np.linalg.inv(W @ W.T + 0.4 * np.eye(6))
    means, cov = ppca_posterior(X, mean, W, 0.4)
    np.testing.assert_allclose(means, (X - mean) @ C_inv @ W, rtol=1e-10)
    np.testing.assert_allclose(cov, np.eye(2) - W.T @ C_inv @ W, rtol=1e-10)


def test_linear_vae_marginal_obeys_bayes_rule_with_the_models_own_decoder():
    # log p(x) = log p(x|z) + log p(z) - log p(z|x) for every z: a check of the marginal, the
    # posterior and the out.W convention (y = z W + b, W : (Z, D)) against the model's NLL.
    rng = np.random.default_rng(5)
    model = VAE(6, hidden_dims=(), latent_dim=2, likelihood="gaussian", sigma=0.6,
                dtype=np.float64, seed=0)
    model.params["out.b"][:] = rng.standard_normal(6)
    mean, W, sigma2 = linear_vae_marginal(model)
    assert W.shape == (6, 2) and sigma2 == pytest.approx(0.36)
    x = rng.standard_normal((4, 6))
    post_mean, post_cov = ppca_posterior(x, mean, W, sigma2)
    z = rng.standard_normal((4, 2))  # any z will do: take eps so that z = mu + σ·eps
    mu, logvar = model.encode(x)
    log_px_given_z = -model.nll(x, (z - mu) / np.exp(logvar / 2))
    log_pz = multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
    log_pz_given_x = multivariate_normal(np.zeros(2), post_cov).logpdf(z - post_mean)
    np.testing.assert_allclose(ppca_log_likelihood(x, mean, W, sigma2),
                               log_px_given_z + log_pz - log_pz_given_x, rtol=1e-10)


def test_linear_vae_marginal_refuses_other_models():
    with pytest.raises(ValueError, match="linear-Gaussian"):
        linear_vae_marginal(VAE(6, hidden_dims=(4,), latent_dim=2, likelihood="gaussian"))
    with pytest.raises(ValueError, match="linear-Gaussian"):
        linear_vae_marginal(VAE(6, hidden_dims=(), latent_dim=2, likelihood="bernoulli"))


def test_fit_rejects_bad_arguments():
    X = np.random.default_rng(6).standard_normal((10, 4))
    for bad in (0, 4, 1.5):
        with pytest.raises(ValueError, match="n_components"):
            fit_ppca(X, bad)
    with pytest.raises(ValueError, match="at least 2"):
        fit_ppca(X[:1], 2)
    with pytest.raises(ValueError, match="σ² = 0"):
        fit_ppca(np.zeros((10, 4)), 2)


# --- the ELBO identity, and EM ------------------------------------------------------------------


def _nonlinear_vae(seed=0, D=6, Z=2, sigma=0.5):
    model = npvae.VAE(D, hidden_dims=(4,), latent_dim=Z, likelihood="gaussian", sigma=sigma,
                      dtype=np.float64, seed=seed)
    return model


def test_elbo_identity_holds_to_rounding_with_each_term_checked_independently():
    import scipy.stats

    rng = np.random.default_rng(0)
    model = npvae.VAE(6, hidden_dims=(), latent_dim=2, likelihood="gaussian", sigma=0.5,
                      dtype=np.float64, seed=0)
    model.params["mu.b"][:] = 0.3  # an encoder that is not the posterior
    x = rng.standard_normal((5, 6))
    log_px, elbo, kl = ppca.elbo_identity(model, x)
    np.testing.assert_allclose(log_px - elbo - kl, 0, atol=1e-12)
    assert np.all(kl > 0) and np.all(elbo < log_px)
    # log p(x): scipy's multivariate normal with the decoder's marginal covariance.
    V, b = model.params["out.W"], model.params["out.b"]
    ref = scipy.stats.multivariate_normal.logpdf(x, b, V.T @ V + 0.25 * np.eye(6))
    np.testing.assert_allclose(log_px, ref, rtol=1e-12)
    # ELBO: a Monte Carlo average of log p(x|z) - KL(q ‖ p(z)), z = mu + σ·eps.
    eps = rng.standard_normal((40_000, 5, 2))
    _, _, stats = model.loss_and_grads(x[:1], eps[:, :1])
    mc = -model.nll(x[:1], eps[:, :1])[:, 0] - stats["kl"]
    assert abs(mc.mean() - elbo[0]) < 5 * mc.std() / np.sqrt(len(mc))
    # KL(q ‖ p(z|x)): E_q[log q(z) - log p(z|x)], with scipy's densities.
    mu, logvar = model.encode(x[:1])
    z = mu + np.exp(logvar / 2) * eps[:, 0]  # (N, Z)
    post_mean, post_cov = ppca.ppca_posterior(x[:1], *ppca.linear_vae_marginal(model))
    log_ratio = (scipy.stats.multivariate_normal.logpdf(z, mu[0], np.diag(np.exp(logvar[0])))
                 - scipy.stats.multivariate_normal.logpdf(z, post_mean[0], post_cov))
    assert abs(log_ratio.mean() - kl[0]) < 5 * log_ratio.std() / np.sqrt(len(z))


def test_elbo_identity_needs_a_linear_gaussian_decoder():
    with pytest.raises(ValueError, match="linear-Gaussian VAE"):
        ppca.elbo_identity(_nonlinear_vae(), np.zeros((2, 6)))


def test_gaussian_kl_is_zero_for_equal_and_matches_the_diagonal_closed_form():
    mu, logvar = np.array([0.5, -1.0]), np.array([0.3, -0.7])
    cov = np.diag(np.exp(logvar))
    assert abs(ppca.gaussian_kl(mu, cov, mu, cov)) < 1e-14
    expected = 0.5 * (mu * mu + np.exp(logvar) - logvar - 1).sum()
    assert ppca.gaussian_kl(mu, cov, np.zeros(2), np.eye(2)) == pytest.approx(expected, rel=1e-12)


def test_em_never_decreases_the_likelihood_and_reaches_the_closed_form_optimum():
    rng = np.random.default_rng(1)
    X, _, _ = ppca.low_rank_data(400, 6, 2, 0.5, rng)
    mean, W, sigma2, history = ppca.em_ppca(X, 2, n_iter=300, rng=np.random.default_rng(2))
    assert len(history) == 301 and np.all(np.diff(history) >= -1e-10)
    m, W_ml, s_ml = ppca.fit_ppca(X, 2)
    best = ppca.ppca_log_likelihood(X, m, W_ml, s_ml).mean()
    assert history[-1] == pytest.approx(best, abs=1e-8) and history[0] < best - 0.5
    assert sigma2 == pytest.approx(s_ml, rel=1e-6)
    assert ppca.principal_angles(W, W_ml).max() < 0.01  # the same subspace (W up to rotation)
