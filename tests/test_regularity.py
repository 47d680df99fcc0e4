"""The regularity measures (npvae.study.regularity) against closed forms and brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npvae
from npvae.study import regularity


def test_nearest_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    x, reference = rng.random((37, 6)), rng.random((23, 6))
    distances, indices = regularity.nearest(x, reference, batch_size=5)
    brute = np.linalg.norm(x[:, None] - reference[None], axis=2)  # (N, M)
    np.testing.assert_array_equal(indices, brute.argmin(axis=1))
    np.testing.assert_allclose(distances, brute.min(axis=1), rtol=1e-10)
    np.testing.assert_array_equal(regularity.nearest_distances(x, reference), distances)
    assert regularity.nearest(reference[:4], reference)[0] == pytest.approx(0, abs=1e-6)


def test_outside_ball_counts_the_codes_beyond_the_radius():
    z = np.array([[0.0, 0.0], [3.0, 0.1], [-2.0, 2.0], [30.0, 0.0]])  # |z| = 0, 3.002, 2.83, 30
    assert regularity.outside_ball(z, 3.0) == 0.5
    assert regularity.outside_ball(z, 40.0) == 0.0


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_the_priors_own_mass_outside_the_ball(latent_dim):
    if latent_dim == 2:  # ‖z‖² ~ chi-squared(2) = Exponential(1/2)
        assert regularity.prior_outside_ball(2, 3.0) == pytest.approx(np.exp(-4.5))
    z = np.random.default_rng(1).standard_normal((400_000, latent_dim))
    mc = regularity.outside_ball(z, 3.0)
    p = regularity.prior_outside_ball(latent_dim, 3.0)
    assert abs(mc - p) < 5 * np.sqrt(p * (1 - p) / len(z))


def _with_moments(mean, std, n=500, seed=0):
    """n codes whose sample mean is exactly ``mean`` and sample covariance exactly diag(std²)."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T  # cov I
    return z * std + mean


@settings(deadline=None, max_examples=30)
@given(st.lists(st.tuples(st.floats(-30, 30), st.floats(0.05, 30)), min_size=1, max_size=4))
def test_moment_matched_kl_is_the_diagonal_gaussian_kl(moments):
    mean, std = np.array(moments).T
    z = _with_moments(mean, std)
    # KL(N(m, diag s²) ‖ N(0, I)) = ½ Σ (s² + m² − 1 − log s²), dimension by dimension.
    expected = 0.5 * np.sum(std ** 2 + mean ** 2 - 1 - np.log(std ** 2))
    assert regularity.moment_matched_kl(z) == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_moment_matched_kl_sees_correlation():
    # Codes on a thin diagonal line: each coordinate is N(0, 1), yet the pair is far from N(0, I).
    t = np.random.default_rng(2).standard_normal(5000)
    line = np.stack([t, t + 0.01 * np.random.default_rng(3).standard_normal(5000)], axis=1)
    assert regularity.moment_matched_kl(line) > 3
    assert regularity.moment_matched_kl(np.random.default_rng(4).standard_normal((5000, 2))) < 0.01


def test_near_data_fraction_compares_with_the_reconstructions_percentile():
    recon = np.arange(1.0, 11.0)  # median 5.5
    assert regularity.near_data_fraction([1.0, 5.0, 6.0, 20.0], recon) == 0.5
    assert regularity.near_data_fraction([1.0, 5.0, 6.0, 20.0], recon, q=100) == 0.75


def test_effective_classes_is_exp_entropy():
    assert regularity.effective_classes(np.arange(1000) % 10) == pytest.approx(10)
    assert regularity.effective_classes(np.full(50, 3)) == pytest.approx(1)
    assert regularity.effective_classes(np.array([0, 0, 7, 7])) == pytest.approx(2)
    p = np.array([0.5, 0.25, 0.25])
    labels = np.repeat([0, 1, 2], (p * 8).astype(int))
    assert regularity.effective_classes(labels) == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_prior_classes_labels_each_draw_by_its_nearest_image():
    model = npvae.VAE(4, hidden_dims=(3,), latent_dim=2, seed=0, dtype=np.float64)
    reference = np.array([[0.0] * 4, [1.0] * 4])  # all dark, all bright
    labels = np.array([4, 9])
    got = regularity.prior_classes(model, reference, labels, n=50, rng=np.random.default_rng(1))
    draws = model.sample(50, rng=np.random.default_rng(1))  # the same draws
    dark = np.linalg.norm(draws, axis=1) <= np.linalg.norm(draws - 1, axis=1)
    np.testing.assert_array_equal(got, np.where(dark, 4, 9))
