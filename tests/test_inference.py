"""Amortised inference: per-example q* against the encoder's q, checked on a linear-Gaussian
VAE, where the best diagonal Gaussian is known in closed form."""

import numpy as np

import npvae
from npvae.study import inference
from npvae.study import ppca


def _linear_model(seed=0):
    model = npvae.VAE(6, hidden_dims=(), latent_dim=2, likelihood="gaussian", sigma=0.5,
                      dtype=np.float64, seed=seed)
    model.params["out.W"][...] = np.random.default_rng(seed).standard_normal((2, 6))
    return model


def test_elbo_of_q_is_the_closed_form_elbo_up_to_monte_carlo_error():
    model = _linear_model()
    model.params["logvar.b"][:] = -2.0  # a narrow q, so that the Monte Carlo error is small
    x = np.random.default_rng(1).standard_normal((4, 6))
    mu, logvar = model.encode(x)
    mc = inference.elbo_of_q(model, x, mu, logvar, k=200_000, rng=np.random.default_rng(2))
    _, exact, _ = ppca.elbo_identity(model, x)
    np.testing.assert_allclose(mc, exact, atol=0.05)


def test_optimize_q_finds_the_best_diagonal_gaussian():
    """For a linear-Gaussian decoder the posterior is N(m, Σ) with precision Λ = Σ⁻¹; the best
    diagonal Gaussian (KL(q ‖ p) minimised) has mean m and variances 1 / diag(Λ)."""
    model = _linear_model()
    x = np.random.default_rng(1).standard_normal((4, 6))
    mu, logvar = inference.optimize_q(model, x, steps=4000, lr=1e-2, k=32,
                                      rng=np.random.default_rng(3))
    post_mean, post_cov = ppca.ppca_posterior(x, *ppca.linear_vae_marginal(model))
    np.testing.assert_allclose(mu, post_mean, atol=0.03)
    best_var = np.broadcast_to(1 / np.diag(np.linalg.inv(post_cov)), logvar.shape)
    np.testing.assert_allclose(np.exp(logvar), best_var, rtol=0.1)


def test_the_optimised_q_closes_the_amortisation_gap():
    model = _linear_model()  # its random encoder is far from the posterior
    x = np.random.default_rng(1).standard_normal((5, 6))
    gap = inference.amortization_gap(model, x, steps=1500, k_elbo=20_000, k_log_px=20_000,
                                     rng=np.random.default_rng(4))
    assert np.all(gap["elbo_optimal"] > gap["elbo_encoder"] + 0.5)
    exact, _, _ = ppca.elbo_identity(model, x)
    assert np.all(gap["elbo_optimal"] <= exact + 0.05)  # still a lower bound
    assert np.all(gap["log_px"] > gap["elbo_encoder"])  # IWAE, from the (poor) encoder's q


def test_elbo_of_q_and_grads_is_the_vaes_loss_at_the_encoders_q():
    """Given the encoder's own q and the same eps, the per-example q's loss is the VAE's loss,
    and its dmu, dlogvar are what the VAE's backward sends into the encoder's heads: with no
    hidden layer, grads["mu.W"] = xᵀ dmu and grads["mu.b"] = Σ_B dmu (the same for logvar)."""
    model = npvae.VAE(6, hidden_dims=(), latent_dim=2, likelihood="bernoulli",
                      dtype=np.float64, seed=3)
    rng = np.random.default_rng(5)
    x = (rng.uniform(size=(4, 6)) < 0.5).astype(np.float64)
    eps = rng.standard_normal((3, 4, 2))
    mu, logvar = model.encode(x)
    loss, dmu, dlogvar = inference.elbo_of_q_and_grads(model, x, mu, logvar, eps)
    ref_loss, grads, _ = model.loss_and_grads(x, eps)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(dmu.sum(axis=0), grads["mu.b"], rtol=1e-12)
    np.testing.assert_allclose(x.T @ dmu, grads["mu.W"], rtol=1e-12)
    np.testing.assert_allclose(dlogvar.sum(axis=0), grads["logvar.b"], rtol=1e-12)
    np.testing.assert_allclose(x.T @ dlogvar, grads["logvar.W"], rtol=1e-12)
