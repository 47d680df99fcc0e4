"""Properties of the terminal nodes, checked with hypothesis: the mathematics, not the code."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npvae.core import distributions as dist

seeds = st.integers(0, 2**32 - 1)
finite = st.floats(-8, 8, allow_nan=False, allow_infinity=False)
latent = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)), elements=finite)


@given(latent, seeds)
def test_kl_is_nonnegative_and_zero_only_at_the_prior(mu, seed):
    logvar = np.random.default_rng(seed).uniform(-8, 8, mu.shape)
    kl, _, _ = dist.kl_standard_normal(mu, logvar)
    assert np.all(kl >= 0)
    away = (np.abs(mu) > 1e-3).any(axis=-1) | (np.abs(logvar) > 1e-3).any(axis=-1)
    assert np.all(kl[away] > 0)
    kl0, dmu, dlogvar = dist.kl_standard_normal(np.zeros_like(mu), np.zeros_like(mu))
    assert np.all(kl0 == 0) and np.all(dmu == 0) and np.all(dlogvar == 0)


def test_kl_is_exact_near_the_prior():
    """expm1 keeps the digits that e^logvar - 1 - logvar would cancel away: KL ≈ logvar² / 4."""
    logvar = np.array([[1e-9]])
    kl, _, _ = dist.kl_standard_normal(np.zeros_like(logvar), logvar)
    assert math.isclose(kl[0], 0.25 * 1e-18, rel_tol=1e-6)


@given(st.integers(1, 4), seeds)
def test_closed_form_kl_matches_monte_carlo(Z, seed):
    """KL(q ‖ p) = E_q[log q(z) - log p(z)]: the closed form lies within 5 standard errors."""
    rng = np.random.default_rng(seed)
    mu, logvar = rng.uniform(-2, 2, (1, Z)), rng.uniform(-2, 2, (1, Z))
    eps = rng.standard_normal((50_000, 1, Z))
    z, _ = dist.reparameterize_forward(mu, logvar, eps)
    log_q = dist.gaussian_log_density(z, mu, logvar)[0]  # (N, 1)
    log_p = dist.standard_normal_log_density(z)[0]
    samples = (log_q - log_p)[:, 0]
    kl, _, _ = dist.kl_standard_normal(mu, logvar)
    se = samples.std() / math.sqrt(len(samples))
    assert abs(samples.mean() - kl[0]) < 5 * se


@given(seeds)
def test_reparameterized_samples_have_mean_mu_and_variance_exp_logvar(seed):
    """Catches the classic bug of using exp(logvar), not exp(logvar / 2), as the std."""
    rng = np.random.default_rng(seed)
    mu, logvar = rng.uniform(-3, 3, (2, 3)), rng.uniform(-3, 3, (2, 3))
    N = 100_000
    z, _ = dist.reparameterize_forward(mu, logvar, rng.standard_normal((N, 2, 3)))
    var = np.exp(logvar)
    assert np.all(np.abs(z.mean(axis=0) - mu) < 5 * np.sqrt(var / N))
    # the sample variance has standard error ≈ var · √(2 / N)
    assert np.all(np.abs(z.var(axis=0) - var) < 5 * var * math.sqrt(2 / N))


def naive_bce(logits, x):
    p = 1 / (1 + np.exp(-logits))
    return -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=-1)


@given(arrays(np.float64, (3, 4), elements=st.floats(-15, 15)),
       arrays(np.float64, (3, 4), elements=st.floats(0, 1)))
def test_stable_bce_matches_naive_formula_where_that_is_finite(logits, x):
    nll, dlogits = dist.bernoulli_nll(logits, x)
    np.testing.assert_allclose(nll, naive_bce(logits, x), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dlogits, 1 / (1 + np.exp(-logits)) - x, rtol=1e-12, atol=1e-15)


@given(arrays(np.float64, (2, 5), elements=st.floats(-1e4, 1e4)),
       arrays(np.float64, (2, 5), elements=st.sampled_from([0.0, 1.0])))
def test_stable_bce_stays_finite_and_exact_at_the_extremes(logits, x):
    for dtype in (np.float64, np.float32):
        nll, dlogits = dist.bernoulli_nll(logits.astype(dtype), x.astype(dtype))
        assert nll.dtype == dtype and dlogits.dtype == dtype
        assert np.all(np.isfinite(nll)) and np.all(np.isfinite(dlogits))
        assert np.all(np.abs(dlogits) <= 1)


def test_stable_bce_exact_values_at_1e4():
    logits = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=np.float32)
    x = np.array([[1, 0, 0, 1]], dtype=np.float32)
    nll, dlogits = dist.bernoulli_nll(logits[:, :2], x[:, :2])
    assert nll[0] == 0.0 and np.all(dlogits == 0)  # confident and right: no loss at all
    nll, dlogits = dist.bernoulli_nll(logits[:, 2:], x[:, 2:])
    assert nll[0] == 2e4 and np.array_equal(dlogits, [[1.0, -1.0]])  # confident and wrong


@given(arrays(np.float64, (3, 6), elements=finite), arrays(np.float64, (3, 6), elements=finite),
       st.floats(0.05, 5))
def test_gaussian_nll_is_a_true_density(mean, x, sigma):
    """Equals -log N(x | mean, σ² I) from scipy, constant D/2·log(2πσ²) included."""
    from scipy.stats import norm

    nll, _ = dist.gaussian_nll(mean, x, sigma)
    np.testing.assert_allclose(nll, -norm.logpdf(x, mean, sigma).sum(axis=-1), rtol=1e-10)
    logvar = np.full_like(x, 2 * math.log(sigma))
    nll_learned, _, _ = dist.gaussian_nll_learned(mean, logvar, x)
    np.testing.assert_allclose(nll_learned, nll, rtol=1e-10)
    logp, _, _, _ = dist.gaussian_log_density(x, mean, logvar)
    np.testing.assert_allclose(logp, -nll, rtol=1e-10)


def test_gaussian_nll_integrates_to_one():
    """∫ exp(-nll) dx = 1 in one dimension: a density, not just a loss up to a constant."""
    from scipy.integrate import quad

    for sigma in (0.3, 1.0, 2.5):
        total, _ = quad(lambda t: math.exp(-dist.gaussian_nll(np.array([[0.7]]),
                                                              np.array([[t]]), sigma)[0][0]),
                        -30, 30, points=[0.7])
        assert math.isclose(total, 1.0, rel_tol=1e-9)


@given(latent)
def test_standard_normal_density_is_the_diagonal_one_at_the_prior(z):
    logp, dz = dist.standard_normal_log_density(z)
    logp2, dz2, _, _ = dist.gaussian_log_density(z, np.zeros_like(z), np.zeros_like(z))
    np.testing.assert_allclose(logp, logp2, rtol=1e-12)
    np.testing.assert_allclose(dz, dz2, rtol=1e-12)


def test_reparameterize_backward_sums_over_samples():
    rng = np.random.default_rng(0)
    mu, logvar, eps = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((4, 2, 3))
    _, cache = dist.reparameterize_forward(mu, logvar, eps)
    dz = rng.standard_normal((4, 2, 3))
    dmu, dlogvar = dist.reparameterize_backward(dz, cache)
    np.testing.assert_allclose(dmu, dz.sum(axis=0))
    np.testing.assert_allclose(dlogvar, (dz * eps * np.exp(logvar / 2) / 2).sum(axis=0))


def test_logsumexp_is_exact_over_large_spreads():
    """Shifted by the max, nothing overflows or underflows to a wrong value: log(e⁰ + e⁻¹⁰⁰⁰)
    is 0 and log(e¹⁰⁰⁰ + e⁰) is 1000 to the last bit (e^±1000 is not a float64)."""
    a = np.array([[0.0, -1000.0], [1000.0, 0.0], [-1000.0, -1001.0], [1.0, 2.0]])
    with np.errstate(all="ignore"):  # the value alone must show a wrong shift
        got = dist.logsumexp(a, axis=1)
        got_t = dist.logsumexp(a.T, axis=0)
    np.testing.assert_array_equal(got[:2], [0.0, 1000.0])
    assert got[2] == -1000.0 + math.log1p(math.exp(-1.0))
    assert got[3] == 2.0 + math.log1p(math.exp(-1.0))
    np.testing.assert_array_equal(got_t, got)
    f32 = dist.logsumexp(np.array([[100.0, 0.0], [-200.0, -201.0]], np.float32), axis=1)
    assert f32.dtype == np.float32  # e^100 overflows float32 without the shift
    np.testing.assert_allclose(f32, [100.0, -200.0 + math.log1p(math.exp(-1.0))], rtol=1e-7)


def test_logsumexp_of_infinite_entries_without_nan_or_warning():
    """An all -inf slice is log 0 = -inf, a +inf entry gives +inf, and a -inf entry beside
    finite ones adds nothing; no NaN and no RuntimeWarning on the way."""
    inf = np.inf
    a = np.array([[-inf, -inf, -inf], [0.0, -inf, -inf], [inf, 1.0, -inf], [inf, inf, 0.0]])
    with np.errstate(all="raise"):
        got = dist.logsumexp(a, axis=1)
    np.testing.assert_array_equal(got, [-inf, 0.0, inf, inf])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_nll_makes_no_subnormal_number(dtype):
    """Very negative logits would make e = exp(-|l|) and sigmoid(l) subnormal (slow on some
    CPUs); bernoulli_nll sets such e to 0, at a cost below 1.2e-38 per entry."""
    logits = np.concatenate([-np.geomspace(1, 1e4, 200), np.geomspace(1, 1e4, 200)])[None]
    logits = logits.astype(dtype)  # (1, 400)
    x = (np.arange(400) % 2)[None].astype(dtype)
    nll, dlogits = dist.bernoulli_nll(logits, x)
    tiny = np.finfo(dtype).smallest_normal
    assert not np.any((dlogits != 0) & (np.abs(dlogits) < tiny))
    reference = (np.logaddexp(0, logits.astype(np.float64)) - x * logits).sum()
    assert nll[0] == pytest.approx(reference, rel=4 * float(np.finfo(dtype).eps))



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_nll_over_several_product_blocks_is_the_sum_of_softplus(dtype):
    """Σ_D log(1 + e) is taken as the log of products over blocks of LOG_PRODUCT_BLOCK pixels:
    on rows of 2,500 pixels (three blocks, the last one short) and leading (K, B) axes, the
    NLL is the textbook Σ softplus(l) - x·l, computed in float64, to float rounding."""
    rng = np.random.default_rng(5)
    logits = (6 * rng.standard_normal((2, 3, 2500))).astype(dtype)  # (K, B, D)
    x = rng.uniform(size=(2, 3, 2500)).astype(dtype)
    nll, dlogits = dist.bernoulli_nll(logits, x)
    l64, x64 = logits.astype(np.float64), x.astype(np.float64)
    reference = (np.logaddexp(0, l64) - x64 * l64).sum(axis=-1)  # (K, B)
    assert nll.dtype == dtype and nll.shape == (2, 3)
    np.testing.assert_allclose(nll, reference, rtol=8 * np.finfo(dtype).eps)
    np.testing.assert_allclose(dlogits, 1 / (1 + np.exp(-l64)) - x64, rtol=0,
                               atol=4 * np.finfo(dtype).eps)


def test_bernoulli_nll_of_a_long_row_at_zero_does_not_overflow_its_products():
    """At logits 0 every factor u = 1 + e is 2, the most it can be: a block's product is
    2^1000, inside float64's range, and a row of 3,000 pixels costs 3000·log 2 nats, whatever
    the leading axes, here (K, B) = (2, 1)."""
    assert 2.0 ** dist.LOG_PRODUCT_BLOCK < np.finfo(np.float64).max  # the largest block product
    for dtype in (np.float32, np.float64):
        nll, _ = dist.bernoulli_nll(np.zeros((2, 1, 3000), dtype), np.zeros((2, 1, 3000), dtype))
        assert nll.shape == (2, 1)
        np.testing.assert_allclose(nll, 3000 * math.log(2), rtol=4 * np.finfo(dtype).eps)



@pytest.mark.parametrize("dtype, a", [(np.float32, [3.0, 12.0, 20.0]),
                                      (np.float64, [3.0, 30.0, 40.0])])
def test_bernoulli_nll_of_a_right_prediction_is_exact_to_the_last_digit(dtype, a):
    """Right and confident, the loss is log1p(e^{-|l|}), far below 1: it is computed to its own
    last digit, not to the last digit of 1. Taken as log(1 + e) alone it would lose everything
    that rounding 1 + e drops (all of it once e < ulp(1)/2), hence the δ = e - (u - 1) term."""
    a = np.array(a, dtype)
    logits = np.concatenate([a, -a])[:, None]  # (6, 1): D = 1
    x = np.array([1, 1, 1, 0, 0, 0], dtype)[:, None]
    nll, _ = dist.bernoulli_nll(logits, x)
    exact = np.log1p(np.exp(-np.concatenate([a, a]).astype(np.float64)))
    np.testing.assert_allclose(nll, exact, rtol=4 * np.finfo(dtype).eps, atol=0)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_nll_of_many_right_pixels_is_within_its_stated_error(dtype):
    """784 right, confident pixels: in float32 the tiny loss keeps its own last digits; in
    float64 the float64 product's rounding bounds the error by D·2⁻⁵³ nats (the docstring)."""
    for a in (5.0, 10.0, 15.0, 20.0, 30.0, 40.0):
        nll, _ = dist.bernoulli_nll(np.full((1, 784), a, dtype), np.ones((1, 784), dtype))
        exact = 784 * math.log1p(math.exp(-a))
        if dtype == np.float32:
            assert abs(nll[0] - exact) <= 2 * np.finfo(dtype).eps * exact
        else:
            assert abs(nll[0] - exact) <= 784 * 2.0**-53


def test_terminal_nodes_sum_over_the_last_axis_whatever_the_leading_axes():
    """Each node sums over its last axis only: on (K, B, D) arrays its values and gradients
    are those of the K·B rows computed as a (K·B, D) batch, reshaped (the IWAE bound hands
    them (K, B, Z) samples)."""
    rng = np.random.default_rng(4)
    a, b, c = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    x01 = rng.uniform(size=(2, 3, 4))
    cases = [
        (dist.bernoulli_nll, (a, x01)),
        (lambda m, x: dist.gaussian_nll(m, x, 0.7), (a, b)),
        (dist.gaussian_nll_learned, (a, b, c)),
        (dist.kl_standard_normal, (a, b)),
        (lambda mu, logvar: (dist.kl_per_dimension(mu, logvar),), (a, b)),
        (dist.gaussian_log_density, (a, b, c)),
        (dist.standard_normal_log_density, (a,)),
    ]
    for node, args in cases:
        whole = node(*args)
        rows = node(*(arg.reshape(6, 4) for arg in args))
        for got, want in zip(whole, rows):
            np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-13)
            assert got.shape[:2] == (2, 3)
