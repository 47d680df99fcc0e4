"""Bad input is refused with a message that names the problem and the fix; extreme input stays
finite. (Issue: never silently wrong.)"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npvae import VAE


@pytest.fixture
def model():
    return VAE(6, hidden_dims=(4,), latent_dim=2, seed=0)


X = np.full((3, 6), 0.5, np.float32)


@pytest.mark.parametrize("x, error, message", [
    (np.zeros((3, 5), np.float32), ValueError, r"shape \(3, 5\); expected \(B, D\) = \(batch, 6\)"),
    (np.zeros(6, np.float32), ValueError, r"expected \(B, D\).*reshape"),
    (np.zeros((2, 3, 6), np.float32), ValueError, r"expected \(B, D\)"),
    (np.zeros((0, 6), np.float32), ValueError, "empty batch"),
    (np.full((3, 6), np.nan, np.float32), ValueError, "NaN or infinite"),
    (np.full((3, 6), np.inf, np.float32), ValueError, "NaN or infinite"),
    (np.full((3, 6), 2.0, np.float32), ValueError, r"targets in \[0, 1\].*divide pixels by 255"),
    (np.full((3, 6), -0.1, np.float32), ValueError, r"targets in \[0, 1\]"),
    (np.zeros((3, 6), np.uint8), TypeError, r"dtype uint8.*astype\(np.float32\) / 255"),
    (np.zeros((3, 6), np.int64), TypeError, "floating-point data"),
    (np.zeros((3, 6), bool), TypeError, "floating-point data"),
])
def test_bad_data_is_refused_with_a_message(model, x, error, message):
    with pytest.raises(error, match=message):
        model.loss_and_grads(x)


def test_gaussian_likelihood_accepts_any_real_targets():
    model = VAE(6, hidden_dims=(4,), latent_dim=2, likelihood="gaussian", seed=0)
    loss, _, _ = model.loss_and_grads(np.full((3, 6), -7.0, np.float32))
    assert np.isfinite(loss)


def test_data_of_another_float_dtype_is_cast_to_the_model_dtype(model):
    loss64, _, _ = model.loss_and_grads(X.astype(np.float64), eps=np.zeros((3, 2)))
    loss32, _, _ = model.loss_and_grads(X, eps=np.zeros((3, 2), np.float32))
    assert loss64 == loss32


@pytest.mark.parametrize("eps_shape", [(3, 3), (2, 3), (4, 2, 2), (3,), (1, 1, 3, 2), (0, 3, 2)])
def test_eps_of_the_wrong_shape_is_refused(model, eps_shape):
    with pytest.raises(ValueError, match=r"eps has (shape|K = 0)"):
        model.loss_and_grads(X, eps=np.zeros(eps_shape, np.float32))


def test_non_finite_eps_is_refused(model):
    with pytest.raises(ValueError, match="eps contains NaN"):
        model.loss_and_grads(X, eps=np.full((3, 2), np.nan, np.float32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_dims=(0,)), "hidden_dims must be positive"),
    (dict(hidden_dims=(4, -1)), "hidden_dims must be positive"),
    (dict(latent_dim=0), "latent_dim must be a positive integer"),
    (dict(latent_dim=2.5), "latent_dim must be a positive integer"),
    (dict(likelihood="poisson"), "unknown likelihood 'poisson'; choose one of bernoulli, gaussian, "
                                 "gaussian-learned"),
    (dict(activation="gelu"), "unknown activation 'gelu'; choose one of identity, relu, "
                              "leaky_relu, tanh, sigmoid, softplus"),
    (dict(sigma=0.0), "sigma must be a positive"),
    (dict(dtype=np.float16), "dtype must be float32 or float64"),
])
def test_bad_architecture_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        VAE(6, **kwargs)


def test_bad_loss_options_are_refused(model):
    with pytest.raises(ValueError, match="unknown objective 'elb'"):
        model.loss_and_grads(X, objective="elb")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.loss_and_grads(X, k=0)
    with pytest.raises(ValueError, match="no beta or free bits"):
        model.loss_and_grads(X, objective="iwae", k=2, beta=0.5)
    with pytest.raises(ValueError, match="free_bits must be"):
        model.loss_and_grads(X, free_bits=-1.0)


def test_decode_checks_z(model):
    with pytest.raises(ValueError, match=r"z has shape \(4, 3\); expected \(B, D\) = \(batch, 2\)"):
        model.decode(np.zeros((4, 3), np.float32))


@given(st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]),
       st.floats(1.0, 300.0), st.integers(0, 2**31), st.sampled_from(["relu", "tanh"]))
def test_loss_and_gradients_stay_finite_for_large_weights(likelihood, scale, seed, activation):
    """Weights scaled up to 300×: logits reach ~1e6, logvar slams into its clamp. Everything stays
    finite and no overflow warning is raised (pytest turns RuntimeWarning into an error)."""
    model = VAE(8, hidden_dims=(6,), latent_dim=3, likelihood=likelihood, activation=activation,
                seed=seed)
    for p in model.params.values():
        p *= scale
    x = (np.random.default_rng(seed).uniform(size=(5, 8)) < 0.5).astype(np.float32)
    for kwargs in ({}, {"objective": "iwae", "k": 3}):
        loss, grads, stats = model.loss_and_grads(x, **kwargs)
        assert np.isfinite(loss) and np.isfinite(stats["kl"])
        assert all(np.all(np.isfinite(g)) for g in grads.values())


@given(st.floats(-1e4, 1e4), st.integers(0, 2**31))
def test_extreme_logits_keep_the_model_finite(bias, seed):
    """Drive every output logit to ±1e4 through the output bias."""
    model = VAE(8, hidden_dims=(6,), latent_dim=3, seed=seed)
    model.params["out.b"][:] = bias
    x = (np.random.default_rng(seed).uniform(size=(4, 8)) < 0.5).astype(np.float32)
    loss, grads, _ = model.loss_and_grads(x)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert np.all(np.isfinite(model.decode(np.zeros((2, 3), np.float32))))
