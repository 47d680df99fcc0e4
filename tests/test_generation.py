"""Generation as Algorithm 2 of the source notes has it: z ~ p(z), then x ~ p(x|z).

``sample(..., draw=True)`` and ``decode(z, draw=True)`` return draws x ~ p(x|z), not the mean:
their frequencies and residual variances must be those of the decoder's distribution."""

import numpy as np
import pytest

import npvae

N = 20_000  # draws from one z


def _one_z_many_times(model, seed=0):
    z = np.random.default_rng(seed).standard_normal((1, model.latent_dim)).astype(model.dtype)
    return np.repeat(z, N, axis=0)  # (N, Z), the same z in every row


def test_bernoulli_draws_are_binary_with_the_decoded_frequencies():
    model = npvae.VAE(12, hidden_dims=(8,), latent_dim=2, seed=0)
    z = _one_z_many_times(model)
    draws = model.decode(z, draw=True, rng=np.random.default_rng(1))  # (N, D)
    assert draws.dtype == np.float32 and np.isin(draws, [0, 1]).all()
    p = model.decode(z[:1])[0]  # (D,), the pixel probabilities
    se = np.sqrt(p * (1 - p) / N)
    assert np.all(np.abs(draws.mean(axis=0) - p) < 5 * se + 1e-6)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian-learned"])
def test_gaussian_draws_have_the_decoder_variance(likelihood):
    model = npvae.VAE(12, hidden_dims=(8,), latent_dim=2, likelihood=likelihood, sigma=0.3,
                      dtype=np.float64, seed=0)
    if likelihood == "gaussian-learned":
        model.params["out_logvar.b"][:] = np.linspace(-3, 1, 12)  # a variance per pixel
    z = _one_z_many_times(model)
    draws = model.decode(z, draw=True, rng=np.random.default_rng(1))
    heads, _ = model._decode_forward(z[:1])
    variance = 0.3**2 * np.ones(12) if likelihood == "gaussian" else np.exp(heads[1][0])
    residual = draws - heads[0][0]  # (N, D)
    np.testing.assert_allclose(residual.mean(axis=0), 0, atol=5 * np.sqrt(variance / N).max())
    # Var of a sample variance of N normals: 2σ⁴ / (N - 1).
    np.testing.assert_allclose(residual.var(axis=0), variance,
                               atol=5 * np.sqrt(2 / N) * variance.max())


def test_sample_draws_from_the_prior_then_the_decoder():
    model = npvae.VAE(12, hidden_dims=(8,), latent_dim=2, seed=0)
    means = model.sample(5, rng=np.random.default_rng(3))
    draws = model.sample(5, rng=np.random.default_rng(3), draw=True)
    assert not np.isin(means, [0, 1]).all() and np.isin(draws, [0, 1]).all()
    # Step 1 is z ~ N(0, I) from the rng; step 2 decodes it: the means are decode(z).
    z = np.random.default_rng(3).standard_normal((5, 2), dtype=np.float32)
    np.testing.assert_array_equal(means, model.decode(z))


def test_the_learned_variance_sample_is_not_its_mean():
    """Before: sample() of the learned-variance decoder was decode(z) exactly."""
    model = npvae.VAE(12, hidden_dims=(8,), latent_dim=2, likelihood="gaussian-learned", seed=0)
    mean = model.sample(4, rng=np.random.default_rng(0))
    draw = model.sample(4, rng=np.random.default_rng(0), draw=True)
    assert np.abs(draw - mean).max() > 0.1


def test_cvae_and_estimator_draw_too():
    cvae = npvae.CVAE(12, 3, hidden_dims=(8,), latent_dim=2, seed=0)
    draws = cvae.sample(np.array([0, 1, 2]), rng=np.random.default_rng(0), draw=True)
    assert draws.shape == (3, 12) and np.isin(draws, [0, 1]).all()
    x = (np.random.default_rng(0).uniform(size=(40, 12)) < 0.5).astype(np.float32)
    est = npvae.VAEEstimator(latent_dim=2, hidden_dims=(8,), epochs=1, random_state=0).fit(x)
    assert np.isin(est.sample(6, draw=True), [0, 1]).all()
    assert not np.isin(est.sample(6), [0, 1]).all()


def test_draws_use_the_clamped_log_variance_of_the_loss():
    """The draw's standard deviation is e^{logvar_x / 2} with logvar_x clamped to [-30, 30],
    as in the loss's terminal node: a head of ±80 draws with e^{±15}, not e^{±40}."""
    model = npvae.VAE(3, hidden_dims=(), latent_dim=2, likelihood="gaussian-learned",
                      dtype=np.float64, seed=0)
    model.params["out_logvar.W"][...] = 0.0
    model.params["out_logvar.b"][...] = [80.0, -80.0, 1.0]
    z = _one_z_many_times(model)
    residual = model.decode(z, draw=True, rng=np.random.default_rng(2)) - model.decode(z[:1])
    np.testing.assert_allclose(residual.std(axis=0), np.exp([15.0, -15.0, 0.5]), rtol=0.03)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian-learned"])
def test_a_seeded_gaussian_draw_is_the_mean_plus_std_times_the_generators_normals(likelihood):
    """x = mean + std · noise with noise the Generator's next standard normals (the
    reparameterisation of the data draw), so a seeded draw can be reproduced by hand."""
    model = npvae.VAE(12, hidden_dims=(8,), latent_dim=2, likelihood=likelihood, sigma=0.5,
                      dtype=np.float64, seed=0)
    z = np.random.default_rng(1).standard_normal((5, 2))
    x = model.decode(z, draw=True, rng=np.random.default_rng(7))
    mean = model.decode(z)
    p = model.params
    h = np.maximum(z @ p["decoder.0.W"] + p["decoder.0.b"], 0)  # (5, 8), the ReLU trunk
    logvar_x = np.clip(h @ p["out_logvar.W"] + p["out_logvar.b"], -30, 30) if (
        likelihood == "gaussian-learned") else None  # the loss's clamp [-30, 30]
    std = 0.5 if logvar_x is None else np.exp(0.5 * logvar_x)
    noise = np.random.default_rng(7).standard_normal(mean.shape)
    np.testing.assert_allclose(x, mean + std * noise, rtol=1e-12)
