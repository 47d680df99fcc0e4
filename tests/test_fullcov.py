"""The full-covariance posterior (issue 22.7): its primitives and every parameter against finite
differences, its KL and sampler against independent references, the diagonal VAE as its special
case, and the inference-gap split on a linear-Gaussian model where every term is known."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

import npvae
from npvae.core import distributions as dist
from npvae.models.fullcov import FullCovarianceVAE
from npvae.study import inference_gaps, ppca
from npvae.verify import gradcheck, objective_checks


def _factor(rng, B, Z, scale=1.0):
    """A batch of random Cholesky factors (B, Z, Z) with their heads."""
    logvar = scale * rng.standard_normal((B, Z))
    offdiag = scale * rng.standard_normal((B, Z * (Z - 1) // 2))
    return dist.cholesky_forward(logvar, offdiag)[0], logvar, offdiag


def test_every_full_covariance_gradient_passes_the_finite_difference_check():
    sections = gradcheck.fullcov_sections(seed=0)
    assert len(sections) == 4  # the primitives, then three models
    for title, checks in sections:
        assert checks and all(c.ok for c in checks), (title, [(c.name, c.error) for c in checks])
    names = {c.name for c in sections[1][1]}
    assert {"offdiag.W", "offdiag.b", "logvar.W", "mu.W", "out.W"} <= names


def test_the_gradcheck_case_makes_the_logvar_clamp_bind_and_not():
    model, x, eps = gradcheck.small_model_case(
        dict(likelihood="gaussian-learned", activation="tanh", hidden_dims=(7, 5)), 2, 0,
        model_cls=FullCovarianceVAE)
    model.params["logvar.b"][0] = -80.0
    h = np.tanh(np.tanh(x @ model.params["encoder.0.W"] + model.params["encoder.0.b"])
                @ model.params["encoder.1.W"] + model.params["encoder.1.b"])
    raw = h @ model.params["logvar.W"] + model.params["logvar.b"]  # (B, Z)
    assert (raw[:, 0] < npvae.core.vae.LOGVAR_MIN).all() and (np.abs(raw[:, 1:]) < 30).all()


def test_the_objective_checks_hold_the_kl_and_the_sampler_covariance():
    checks = objective_checks.full_covariance_checks(np.random.default_rng(0))
    names = [c.name for c in checks]
    assert "kl_full_standard_normal" in names and sum("cov[" in n for n in names) == 4
    assert all(c.ok for c in checks), [(c.name, c.value, c.reference) for c in checks if not c.ok]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5))
def test_the_kl_closed_form_against_trace_and_slogdet(seed, Z):
    """½[tr Σ + μᵀμ − Z − log det Σ], with Σ formed and its log-determinant from slogdet."""
    rng = np.random.default_rng(seed)
    L, _, _ = _factor(rng, 3, Z, 0.7)
    mu = rng.standard_normal((3, Z))
    kl = dist.kl_full_standard_normal(mu, L)[0]
    cov = L @ np.swapaxes(L, 1, 2)  # (B, Z, Z)
    ref = 0.5 * (np.trace(cov, axis1=1, axis2=2) + (mu * mu).sum(1) - Z
                 - np.linalg.slogdet(cov)[1])
    np.testing.assert_allclose(kl, ref, rtol=1e-10, atol=1e-12)
    assert (kl >= 0).all()


def test_the_kl_is_zero_at_the_prior_and_the_log_density_is_scipys():
    Z = 3
    L0 = dist.cholesky_forward(np.zeros((1, Z)), np.zeros((1, 3)))[0]
    assert dist.kl_full_standard_normal(np.zeros((1, Z)), L0)[0][0] == pytest.approx(0, abs=1e-15)
    rng = np.random.default_rng(1)
    L, _, _ = _factor(rng, 2, Z)
    mu, z = rng.standard_normal((2, Z)), rng.standard_normal((5, 2, Z))
    logp = dist.gaussian_full_log_density(z, mu, L)[0]  # (K, B)
    for b in range(2):
        ref = scipy.stats.multivariate_normal(mu[b], L[b] @ L[b].T).logpdf(z[:, b])
        np.testing.assert_allclose(logp[:, b], ref, rtol=1e-12)


def test_with_the_offdiag_head_at_zero_it_is_the_diagonal_vae():
    """The same weights, eps and data give the VAE's loss and the VAE's gradients exactly."""
    for likelihood, K in (("bernoulli", 1), ("gaussian", 3)):
        full, x, eps = gradcheck.small_model_case(dict(likelihood=likelihood, activation="tanh"),
                                                  K, 1, model_cls=FullCovarianceVAE)
        diag = npvae.VAE(6, hidden_dims=(5,), latent_dim=3, likelihood=likelihood,
                         activation="tanh", dtype=np.float64)
        full.params["offdiag.W"][...] = 0.0
        full.params["offdiag.b"][...] = 0.0
        for name in diag.params:
            diag.params[name][...] = full.params[name]
        loss_f, grads_f, stats_f = full.loss_and_grads(x, eps, beta=0.7)
        loss_d, grads_d, stats_d = diag.loss_and_grads(x, eps, beta=0.7)
        assert loss_f == pytest.approx(loss_d, rel=1e-12)
        assert stats_f["kl"] == pytest.approx(stats_d["kl"], rel=1e-12)
        for name in diag.params:
            np.testing.assert_allclose(grads_f[name], grads_d[name], rtol=1e-9, atol=1e-12)
        assert np.abs(grads_f["offdiag.W"]).sum() > 0  # the new head is trained from zero


def test_refusals_name_the_fix():
    with pytest.raises(ValueError, match="latent_dim ≥ 2"):
        FullCovarianceVAE(6, latent_dim=1)
    model = FullCovarianceVAE(6, hidden_dims=(4,), latent_dim=2, seed=0)
    x = np.zeros((2, 6))
    with pytest.raises(ValueError, match="ELBO only"):
        model.loss_and_grads(x, objective="iwae", k=2)
    with pytest.raises(ValueError, match="ELBO only"):
        model.loss_and_grads(x, free_bits=0.5)


def test_save_and_load_keep_the_model(tmp_path):
    model = FullCovarianceVAE(6, hidden_dims=(4,), latent_dim=3, seed=0)
    npvae.save(tmp_path / "c.npz", model)
    loaded = npvae.load(tmp_path / "c.npz")
    assert type(loaded) is FullCovarianceVAE
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)


def test_it_trains_and_its_samples_have_the_encoders_covariance():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(200, 8)) < 0.3).astype(np.float32)
    model = FullCovarianceVAE(8, hidden_dims=(16,), latent_dim=2, seed=0)
    history = npvae.train(model, x, epochs=5, batch_size=50, lr=1e-2, verbose=False,
                          rng=np.random.default_rng(1))
    assert history[-1]["loss"] < history[0]["loss"]
    mu, L = model.encode_full(x[:1].astype(np.float32))
    eps = rng.standard_normal((40_000, 1, 2)).astype(np.float32)
    z, _ = dist.full_reparameterize_forward(mu, L, eps)
    np.testing.assert_allclose(np.cov(z[:, 0].T), L[0] @ L[0].T, rtol=0.05, atol=1e-3)
    _, logvar_marginal = model.encode(x[:1])
    np.testing.assert_allclose(np.exp(logvar_marginal[0]), np.diag(L[0] @ L[0].T), rtol=1e-5)


# ------------------------------------------------------------------ the linear-Gaussian model

V_CORRELATED = np.array([[1.0, 0.8, 0.6, 0.2, 0.0, 0.1],
                         [0.9, 0.7, 0.7, 0.0, 0.3, 0.0]])  # (Z, D): nearly parallel rows


def _correlated_linear_model(sigma=0.5):
    """A linear-Gaussian decoder whose posterior is strongly correlated, with the encoder set to
    that exact posterior."""
    return inference_gaps.linear_gaussian_posterior_q(V_CORRELATED, np.linspace(-0.5, 0.5, 6),
                                                      sigma)


def test_the_full_q_represents_a_correlated_posterior_exactly():
    """With q = p(z|x), every importance weight is p(x): log w is PPCA's exact log p(x)."""
    model, cov = _correlated_linear_model()
    assert abs(cov[0, 1]) / np.sqrt(cov[0, 0] * cov[1, 1]) > 0.8  # strongly correlated
    x = np.random.default_rng(0).standard_normal((4, 6))
    log_w = model.log_weights(x, np.random.default_rng(1).standard_normal((7, 4, 2)))
    log_px = ppca.ppca_log_likelihood(x, *ppca.linear_vae_marginal(model))
    np.testing.assert_allclose(log_w, np.broadcast_to(log_px, log_w.shape), atol=1e-9)


def test_the_gap_split_matches_its_closed_forms():
    """For a Gaussian posterior N(m, Λ⁻¹), the best full q is the posterior (approximation gap
    0) and the best diagonal q has variances 1/Λ_ii, so the cost of a diagonal q is
    ½ [Σ_i log Λ_ii − log det Λ] for every x (Cremer et al. 2018's split, here exact)."""
    model, cov = _correlated_linear_model()
    diag_cost = inference_gaps.diagonal_cost(cov)
    rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert diag_cost == pytest.approx(-0.5 * np.log(1 - rho**2), rel=1e-12)  # Z = 2
    assert diag_cost > 0.5  # a visible gap
    model.params["offdiag.b"][...] = 0.0  # the encoder now emits the diagonal of the factor:
    model.params["mu.b"][...] += 0.3  # and a shifted mean, so amortisation has a cost
    x = np.random.default_rng(2).standard_normal((5, 6))
    gaps = inference_gaps.inference_gaps(model, x, steps=600, k_elbo=20_000, k_log_px=2000,
                                         rng=np.random.default_rng(3))
    log_px = ppca.ppca_log_likelihood(x, *ppca.linear_vae_marginal(model))
    np.testing.assert_allclose(gaps["log_px"], log_px, atol=0.01)  # q_full* ≈ p(z|x)
    np.testing.assert_allclose(gaps["elbo_full"], log_px, atol=0.03)
    np.testing.assert_allclose(gaps["elbo_full"] - gaps["elbo_diag"], diag_cost, atol=0.03)
    assert (gaps["elbo_diag"] - gaps["elbo_encoder"] > 0.1).all()  # amortisation, here a bias
    np.testing.assert_allclose(gaps["q_full"][1][0] @ gaps["q_full"][1][0].T, cov, atol=0.03)


def test_the_full_q_gradient_is_steps_1_to_4_of_the_loss():
    """elbo_of_full_q_and_grads against finite differences, for the three q parameters."""
    model, x, eps = gradcheck.small_model_case(dict(activation="tanh"), 3, 0)
    rng = np.random.default_rng(5)
    mu, logvar, off = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), \
        rng.standard_normal((4, 3))
    _, *grads = inference_gaps.elbo_of_full_q_and_grads(model, x, mu, logvar, off, eps)
    f = lambda: inference_gaps.elbo_of_full_q_and_grads(model, x, mu, logvar, off, eps)[0]  # noqa
    for g, v in zip(grads, (mu, logvar, off)):
        assert gradcheck.rel_error(g, gradcheck.numeric_grad(f, v)) < 1e-7


def test_the_gap_functions_refuse_models_they_cannot_read():
    x = np.zeros((2, 6))
    for model in (npvae.Autoencoder(6, hidden_dims=(4,), latent_dim=2, seed=0),
                  npvae.HVAE(6, hidden_dims=(4,), latent_dims=(2, 2), seed=0),
                  npvae.CVAE(6, n_classes=3, hidden_dims=(4,), latent_dim=2, seed=0)):
        with pytest.raises(TypeError, match="supports npvae.VAE and npvae.FullCovarianceVAE"):
            inference_gaps.inference_gaps(model, x, steps=1, k_elbo=1, k_log_px=1)


def test_elbo_terms_are_the_losss_two_terms_per_example():
    model, x, eps = gradcheck.small_model_case(
        dict(likelihood="bernoulli", activation="tanh", hidden_dims=(6,)), 1, 0,
        model_cls=FullCovarianceVAE)
    nll, kl = model.elbo_terms(x, eps)
    mu, L = model.encode_full(x)
    np.testing.assert_allclose(kl, dist.kl_full_standard_normal(mu, L)[0], rtol=1e-12)
    loss, _, stats = model.loss_and_grads(x, eps=eps)
    assert nll.shape == kl.shape == (len(x),)
    assert loss == pytest.approx(nll.mean() + kl.mean(), rel=1e-12)
    assert stats["kl"] == pytest.approx(kl.mean(), rel=1e-12)
