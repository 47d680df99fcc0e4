"""The decoder gradient of the two log p(x) estimators (npvae.study.estimator_gradients):

    ∇θ log (1/K) Σ_k w_k = Σ_k w̃_k ∇θ log p(x|z_k),   w̃ = softmax over K of log w,

checked against centred finite differences of the estimate itself, for both proposals."""

import math

import numpy as np
import pytest

from npvae import VAE
from npvae.core.distributions import logsumexp
from npvae.study import estimator_gradients as eg
from npvae.verify.gradcheck import numeric_grad, rel_error

B, D, Z, K = 3, 6, 2, 5


def small_model(likelihood, seed=0):
    """A tiny float64 VAE, D-5-Z, with weights large enough that the K samples' log
    weights differ by nats (so w̃ is far from uniform)."""
    model = VAE(D, hidden_dims=(5,), latent_dim=Z, likelihood=likelihood, activation="tanh",
                dtype=np.float64, seed=seed)
    for name in ("decoder.0.W", "out.W"):
        model.params[name] *= 3
    return model


def estimate(model, x, draws, proposal):
    """The estimator's value, Σ_b [logsumexp_K log w_kb - log K], from the model's own log
    weights (not from the function under test)."""
    log_w = (model.prior_log_weights(x, draws) if proposal == "prior"
             else model.log_weights(x, draws))  # (K, B)
    return float((logsumexp(log_w, axis=0) - math.log(draws.shape[0])).sum())


def data(likelihood, rng):
    x = rng.random((B, D)) if likelihood == "bernoulli" else rng.standard_normal((B, D))
    return x, rng.standard_normal((K, B, Z))  # x (B, D), draws (K, B, Z)


@pytest.mark.parametrize("proposal", eg.PROPOSALS)
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian-learned"])
def test_the_gradient_is_the_finite_difference_gradient_of_the_estimate(likelihood, proposal):
    rng = np.random.default_rng(1)
    model = small_model(likelihood)
    x, draws = data(likelihood, rng)
    log_p, grads = eg.estimate_and_decoder_gradient(model, x, draws, proposal)
    assert log_p.shape == (B,)
    assert math.isclose(log_p.sum(), estimate(model, x, draws, proposal), rel_tol=1e-12)
    assert set(grads) == {n for n in model.params if n.startswith(("decoder", "out"))}
    # The average of the K one-sample gradients: what uniform weights 1/K would give.
    uniform = [eg.estimate_and_decoder_gradient(model, x, draws[k:k + 1], proposal)[1]
               for k in range(K)]
    for name, analytic in grads.items():
        numeric = numeric_grad(lambda: estimate(model, x, draws, proposal), model.params[name])
        assert rel_error(analytic, numeric) < 1e-7, name
        # The test has the power to see weights replaced by 1/K: they are far from w̃ here.
        assert rel_error(np.mean([g[name] for g in uniform], axis=0), numeric) > 1e-2, name


def test_one_sample_gives_the_gradient_of_log_p_x_given_z():
    # K = 1: w̃ = 1, and both estimators' gradients are ∇θ log p(x|z) = -∇θ NLL at that z.
    rng = np.random.default_rng(2)
    model = small_model("gaussian-learned")
    x, draws = data("gaussian-learned", rng)
    z = draws[:1]  # (1, B, Z)
    _, grads = eg.estimate_and_decoder_gradient(model, x, z, "prior")
    for name, analytic in grads.items():
        numeric = numeric_grad(lambda: float(model.prior_log_weights(x, z).sum()),
                               model.params[name])
        assert rel_error(analytic, numeric) < 1e-7, name


def test_with_q_equal_to_the_prior_the_two_estimators_coincide():
    # An encoder that outputs mu = 0, logvar = 0 makes q(z|x) = p(z): then z = eps, and
    # log p(z) - log q(z|x) = 0, so the posterior's estimate and gradient are the prior's.
    rng = np.random.default_rng(3)
    model = small_model("bernoulli")
    for name in ("mu.W", "mu.b", "logvar.W", "logvar.b"):
        model.params[name][:] = 0
    x, draws = data("bernoulli", rng)
    log_p_prior, g_prior = eg.estimate_and_decoder_gradient(model, x, draws, "prior")
    log_p_post, g_post = eg.estimate_and_decoder_gradient(model, x, draws, "posterior")
    np.testing.assert_allclose(log_p_post, log_p_prior, rtol=1e-12)
    for name in g_prior:
        np.testing.assert_allclose(g_post[name], g_prior[name], rtol=1e-10, atol=1e-14)


def test_noise_and_bias_are_seeded_fractions_of_the_reference():
    model = small_model("bernoulli")
    x = np.random.default_rng(4).random((2, D))
    ks = [1, 20]
    first = eg.gradient_noise_and_bias(model, x, ks, repeats=3, rng=np.random.default_rng(5))
    again = eg.gradient_noise_and_bias(model, x, ks, repeats=3, rng=np.random.default_rng(5))
    for proposal in eg.PROPOSALS:
        for what in ("noise", "bias", "floor"):
            values = first[proposal][what]
            assert values.shape == (2,) and np.all(np.isfinite(values)) and np.all(values >= 0)
            np.testing.assert_array_equal(values, again[proposal][what])
    with pytest.raises(ValueError, match="repeats"):
        eg.gradient_noise_and_bias(model, x, ks, repeats=1)
    with pytest.raises(ValueError, match="proposal"):
        eg.estimate_and_decoder_gradient(model, x, np.zeros((1, 2, Z)), "uniform")
