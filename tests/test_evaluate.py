"""Evaluation: the importance-weighted log p(x) against closed forms, the ELBO, active units."""

import math

import numpy as np
import pytest

from npvae import VAE
from npvae.study import evaluate as ev
from npvae.study import evaluate
from npvae.core.distributions import kl_standard_normal
from npvae.study.ppca import linear_vae_marginal, ppca_log_likelihood, ppca_posterior
from npvae.core.vae import logsumexp


def linear_gaussian_vae(D, Z, sigma, rng, orthogonal=False):
    """A float64 linear-Gaussian VAE with a random decoder, whose exact log p(x) is PPCA's.

    With ``orthogonal``, the decoder's rows are orthogonal (Wᵀ W diagonal in PPCA's (D, Z)
    convention), so the exact posterior has a diagonal covariance and q can equal it.
    """
    model = VAE(D, hidden_dims=(), latent_dim=Z, likelihood="gaussian", sigma=sigma,
                dtype=np.float64, seed=int(rng.integers(2**31)))
    W = rng.standard_normal((D, Z))  # (D, Z)
    if orthogonal:
        W = np.linalg.qr(W)[0] * rng.uniform(0.5, 2.0, size=Z)
    model.params["out.W"][:] = W.T  # (Z, D): y = z W + b
    model.params["out.b"][:] = rng.standard_normal(D)
    return model


def set_encoder(model, mean_shift=0.0, var_scale=1.0):
    """Make q(z|x) the exact posterior's mean (+ shift) with its variances (× scale)."""
    mean, W, sigma2 = linear_vae_marginal(model)
    D, Z = W.shape
    # The posterior mean is linear: m(x) = (x - mean) A with A = W M⁻¹ (D, Z); read A off the
    # means of the unit vectors x = mean + e_d.
    A, cov = ppca_posterior(mean + np.eye(D), mean, W, sigma2)  # (D, Z), (Z, Z)
    model.params["mu.W"][:] = A
    model.params["mu.b"][:] = -mean @ A + mean_shift
    model.params["logvar.W"][:] = 0
    model.params["logvar.b"][:] = np.log(np.diag(cov) * var_scale)
    return cov


def test_exact_posterior_makes_every_log_weight_equal_log_px():
    # q(z|x) = p(z|x) exactly  =>  log w = log p(x, z) - log p(z|x) = log p(x) for every z.
    # An analytic KL inside the weights would make log w vary with z and fail this.
    rng = np.random.default_rng(0)
    model = linear_gaussian_vae(D=6, Z=3, sigma=0.7, rng=rng, orthogonal=True)
    cov = set_encoder(model)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-12  # the posterior is diagonal
    x = 2 * rng.standard_normal((5, 6))
    exact = ppca_log_likelihood(x, *linear_vae_marginal(model))  # (5,)
    log_w = model.log_weights(x, rng.standard_normal((9, 5, 3)))  # (9, 5)
    np.testing.assert_allclose(log_w, np.broadcast_to(exact, (9, 5)), rtol=1e-12)
    for k in (1, 7):
        np.testing.assert_allclose(ev.log_likelihood(model, x, k=k, rng=rng), exact, rtol=1e-12)


def test_large_k_estimate_matches_the_closed_form_log_px():
    # A wrong q (shifted mean, inflated variance, non-diagonal true posterior): the single-sample
    # ELBO is well below log p(x), and k = 2000 samples close the gap to within Monte Carlo error.
    rng = np.random.default_rng(1)
    model = linear_gaussian_vae(D=5, Z=2, sigma=0.5, rng=rng)
    set_encoder(model, mean_shift=0.3, var_scale=2.0)
    x = model.params["out.b"] + 1.5 * rng.standard_normal((30, 5))
    exact = ppca_log_likelihood(x, *linear_vae_marginal(model))  # (30,)
    k = 2000
    estimate = ev.log_likelihood(model, x, k=k, rng=np.random.default_rng(2))
    # Standard error of log (1/k) Σ w by the delta method, sd(w) / (√k mean(w)), from fresh
    # weights of the same q.
    log_w = model.log_weights(x, np.random.default_rng(3).standard_normal((k, 30, 2)))
    w = np.exp(log_w - log_w.max(axis=0))  # (k, 30), rescaled per example
    se = w.std(axis=0) / (math.sqrt(k) * w.mean(axis=0))  # (30,)
    assert (ev.elbo(model, x, rng=rng)["elbo"] < exact.mean() - 20 * se.mean())
    assert np.all(np.abs(estimate - exact) < 5 * se)
    assert abs((estimate - exact).mean()) < 4 * math.sqrt((se**2).sum()) / len(x)


def test_iwae_bound_is_above_the_elbo_and_rises_with_k():
    # A random Bernoulli VAE with a sharpened decoder, so its posterior is far from q and the
    # gaps are wide. Each of 20 examples is repeated 50 times, each time with fresh noise; the
    # paired differences L_k' - L_k (same x) must be positive by > 4 standard errors.
    rng = np.random.default_rng(4)
    model = VAE(12, hidden_dims=(16,), latent_dim=3, dtype=np.float64, seed=0)
    model.params["decoder.0.W"] *= 3
    model.params["out.W"] *= 3
    x = np.tile((rng.uniform(size=(20, 12)) < 0.5).astype(np.float64), (50, 1))  # (1000, 12)
    M = len(x)
    bound = {k: ev.log_likelihood(model, x, k=k, rng=np.random.default_rng(k))
             for k in (1, 4, 32)}
    for k_small, k_large in [(1, 4), (4, 32)]:
        d = bound[k_large] - bound[k_small]  # (M,)
        assert d.mean() > 4 * d.std() / math.sqrt(M)
    # The single-sample bound and the ELBO (closed-form KL) have the same expectation; the
    # k = 4 bound is above both.
    eps = np.random.default_rng(5).standard_normal((M, 3))
    per_example_elbo = -(model.nll(x, eps) + kl_standard_normal(*model.encode(x))[0])  # (M,)
    elbo = ev.elbo(model, x, rng=np.random.default_rng(5), batch_size=M)["elbo"]
    assert elbo == pytest.approx(per_example_elbo.mean(), rel=1e-12)
    se = math.sqrt((per_example_elbo.var() + bound[1].var()) / M)
    assert abs(bound[1].mean() - elbo) < 4 * se
    d = bound[4] - per_example_elbo
    assert d.mean() > 4 * d.std() / math.sqrt(M)


def bernoulli_vae(dtype=np.float64):
    return VAE(6, hidden_dims=(5,), latent_dim=3, dtype=dtype, seed=7)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_chunking_never_changes_the_numbers(dtype, rtol):
    # Example n always gets the n-th (k, Z) block of the stream, however the work is split.
    model = bernoulli_vae(dtype)
    x = (np.random.default_rng(8).uniform(size=(7, 6)) < 0.5).astype(dtype)
    k = 10
    eps = np.random.default_rng(9).standard_normal((7, k, 3), dtype=dtype)  # (N, k, Z)
    log_w = model.log_weights(x, eps.transpose(1, 0, 2)).astype(np.float64)  # (k, N)
    direct = logsumexp(log_w, axis=0) - math.log(k)
    for kwargs in [{}, {"batch_size": 1}, {"batch_size": 3}, {"max_rows": 25},
                   {"max_rows": 4}, {"max_rows": 1}, {"batch_size": 2, "max_rows": 3}]:
        got = ev.log_likelihood(model, x, k=k, rng=np.random.default_rng(9), **kwargs)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, direct, rtol=rtol, err_msg=str(kwargs))


def test_elbo_equals_the_training_loss_with_the_same_noise_and_any_batch_size():
    model = bernoulli_vae()
    x = (np.random.default_rng(10).uniform(size=(9, 6)) < 0.5).astype(np.float64)
    eps = np.random.default_rng(11).standard_normal((9, 3))
    loss, _, stats = model.loss_and_grads(x, eps)
    for batch_size in (9, 4, 1):
        e = ev.elbo(model, x, rng=np.random.default_rng(11), batch_size=batch_size)
        assert e["elbo"] == pytest.approx(-loss, rel=1e-12)
        assert e["recon"] == pytest.approx(stats["recon"], rel=1e-12)
        assert e["kl"] == pytest.approx(stats["kl"], rel=1e-12)


def test_defaults_to_the_models_generator_and_ignores_the_batch_size():
    x = (np.random.default_rng(12).uniform(size=(4, 6)) < 0.5).astype(np.float64)
    a, b = bernoulli_vae(), bernoulli_vae()
    np.testing.assert_array_equal(
        ev.log_likelihood(a, x, k=6, rng=np.random.default_rng(1), batch_size=2),
        ev.log_likelihood(b, x, k=6, rng=np.random.default_rng(1)))
    np.testing.assert_array_equal(ev.log_likelihood(a, x, k=6), ev.log_likelihood(b, x, k=6))
    assert not np.array_equal(ev.log_likelihood(a, x, k=6), ev.log_likelihood(a, x, k=6))


def test_active_units_follow_the_variance_of_the_posterior_mean():
    rng = np.random.default_rng(13)
    model = VAE(8, hidden_dims=(), latent_dim=4, dtype=np.float64, seed=0)
    x = rng.uniform(size=(200, 8))
    W = model.params["mu.W"]  # (D, Z): mu = x W + b
    W[:, 0] = np.eye(8)[3]  # mu_0 = x_3 + b_0: variance var(x_3) ≈ 1/12
    W[:, 1] *= 3  # a random projection: active
    W[:, 2] = 0  # ignores x: inactive
    W[:, 3] = 0.01 * np.eye(8)[3]  # moves, but with variance 1e-4 var(x_3) < 0.01: inactive
    v = ev.posterior_mean_variance(model, x)
    np.testing.assert_allclose(v[[0, 3]], [np.var(x[:, 3]), 1e-4 * np.var(x[:, 3])], rtol=1e-10)
    assert v[2] == 0 and v[1] > 0.01
    assert ev.active_units(model, x) == 2
    assert ev.active_units(model, x, threshold=0.5e-4 * np.var(x[:, 3])) == 3
    assert ev.active_units(model, x, threshold=v.max()) == 0


def test_kl_per_dimension_sums_to_the_total_and_is_zero_where_q_is_the_prior():
    model = VAE(6, hidden_dims=(5,), latent_dim=3, dtype=np.float64, seed=14)
    for head in ("mu", "logvar"):  # unit 1: mu = 0, logvar = 0 for every x
        model.params[f"{head}.W"][:, 1] = 0
        model.params[f"{head}.b"][1] = 0
    x = np.random.default_rng(15).uniform(size=(10, 6))
    kl = ev.kl_per_dimension(model, x)
    assert kl.shape == (3,) and kl[1] == 0 and np.all(kl[[0, 2]] > 0)
    mu, logvar = model.encode(x)
    total = kl_standard_normal(mu, logvar)[0].mean()
    assert kl.sum() == pytest.approx(total, rel=1e-12)
    assert kl.sum() == pytest.approx(ev.elbo(model, x)["kl"], rel=1e-12)


def test_evaluate_summary_is_the_pieces_in_order():
    model = bernoulli_vae()
    x = (np.random.default_rng(16).uniform(size=(8, 6)) < 0.5).astype(np.float64)
    out = ev.evaluate(model, x, k=5, rng=np.random.default_rng(17))
    rng = np.random.default_rng(17)
    e = ev.elbo(model, x, rng=rng)
    log_p = ev.log_likelihood(model, x, k=5, rng=rng)
    assert out == {
        "n": 8, "k": 5, **e,
        "log_likelihood": pytest.approx(log_p.mean(), rel=1e-12),
        "log_likelihood_se": pytest.approx(log_p.std(ddof=1) / math.sqrt(8), rel=1e-12),
        "active_units": ev.active_units(model, x),
        "kl_per_dim": pytest.approx(list(ev.kl_per_dimension(model, x)), rel=1e-12),
    }


def test_bad_arguments_give_clear_errors():
    model = bernoulli_vae()
    x = np.full((3, 6), 0.5)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            ev.log_likelihood(model, x, k=bad)
    with pytest.raises(ValueError, match="batch_size"):
        ev.log_likelihood(model, x, k=3, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        ev.elbo(model, x, batch_size=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.log_likelihood(model, x * 3, k=3)
    with pytest.raises(ValueError, match="shape"):
        ev.evaluate(model, x[:, :5], k=3)


def test_the_prior_sampling_estimator_is_unbiased_for_p_x_and_far_noisier():
    """For a linear-Gaussian VAE, p(x) is exact: the naive estimator's mean of p(x|z_k) over
    z_k ~ p(z) matches it with enough samples, and at k = 10 it scatters, while the
    importance-weighted one, whose encoder here is the true posterior, has no spread at all."""
    from npvae.study import ppca
    from npvae.verify.objective_checks import exact_posterior_vae
    model = exact_posterior_vae()  # its encoder is the true posterior: IWAE is exact
    x = np.random.default_rng(0).standard_normal((3, 5))
    exact = ppca.ppca_log_likelihood(x, *ppca.linear_vae_marginal(model))  # (3,)
    big = evaluate.log_likelihood(model, x, k=400_000, rng=np.random.default_rng(1),
                                  proposal="prior")
    np.testing.assert_allclose(big, exact, atol=0.05)
    naive = np.array([evaluate.log_likelihood(model, x, k=10, rng=np.random.default_rng(s),
                                              proposal="prior") for s in range(20)])
    iwae = np.array([evaluate.log_likelihood(model, x, k=10, rng=np.random.default_rng(s))
                     for s in range(20)])
    assert naive.std(axis=0).min() > 0.1 and iwae.std(axis=0).max() < 1e-9
    np.testing.assert_allclose(iwae[0], exact, atol=1e-9)
    with pytest.raises(ValueError, match="proposal must be"):
        evaluate.log_likelihood(model, x, k=2, proposal="uniform")


