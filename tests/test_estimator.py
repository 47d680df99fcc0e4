"""The scikit-learn-style estimator: its parameters, fit/transform, random_state, score."""

import inspect

import numpy as np
import pytest

from npvae import VAE
from npvae.run.estimator import NotFittedError, VAEEstimator
from npvae.study.evaluate import elbo


def _data(n=240, d=16, seed=0):
    """Binary images of a 2-D latent structure: pixel probabilities σ(z Wᵀ), z ~ N(0, I)."""
    rng = np.random.default_rng(seed)
    z, W = rng.standard_normal((n, 2)), 3 * rng.standard_normal((d, 2))
    return (rng.uniform(size=(n, d)) < 1 / (1 + np.exp(-z @ W.T))).astype(np.float32)


SMALL = dict(latent_dim=2, hidden_dims=(12,), batch_size=32, lr=3e-3)


def test_get_params_set_params_round_trip():
    est = VAEEstimator(latent_dim=3, hidden_dims=(64, 32), epochs=4, beta=0.5,
                       binarize="dynamic", random_state=7)
    params = est.get_params()
    assert list(params) == [n for n in inspect.signature(VAEEstimator).parameters]
    assert params["latent_dim"] == 3 and params["hidden_dims"] == (64, 32)
    clone = type(est)(**est.get_params())
    assert clone.get_params() == params and clone is not est
    assert est.set_params(lr=0.01, epochs=2) is est
    assert est.get_params()["lr"] == 0.01 and est.epochs == 2
    assert clone.get_params(deep=False)["lr"] == 1e-3  # the copy is independent
    with pytest.raises(ValueError, match="no parameter 'learning_rate'"):
        est.set_params(learning_rate=0.1)
    assert repr(clone) == ("VAEEstimator(latent_dim=3, hidden_dims=(64, 32), epochs=4, "
                           "beta=0.5, binarize='dynamic', random_state=7)")


def test_fit_transform_inverse_transform_sample_shapes():
    X = _data()
    est = VAEEstimator(epochs=2, random_state=0, **SMALL)
    assert est.fit(X) is est
    assert isinstance(est.model_, VAE) and est.n_features_in_ == 16 and len(est.history_) == 2
    Z = est.transform(X)
    assert Z.shape == (240, 2) and Z.dtype == np.float32
    np.testing.assert_array_equal(Z, est.model_.encode(X)[0])
    X_hat = est.inverse_transform(Z)
    assert X_hat.shape == X.shape and np.all((X_hat > 0) & (X_hat < 1))
    assert est.sample(5).shape == (5, 16)
    np.testing.assert_array_equal(est.fit_transform(X), Z)  # refitting with an int seed


def test_same_random_state_same_results():
    X = _data()
    a = VAEEstimator(epochs=2, random_state=3, **SMALL).fit(X)
    b = VAEEstimator(epochs=2, random_state=3, **SMALL).fit(X)
    c = VAEEstimator(epochs=2, random_state=4, **SMALL).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    untimed = lambda est: [{k: v for k, v in h.items() if k not in ("seconds", "examples_per_s")}
                           for h in est.history_]  # noqa: E731
    assert untimed(a) == untimed(b)
    np.testing.assert_array_equal(a.sample(4), b.sample(4))
    assert not np.array_equal(a.transform(X), c.transform(X))
    # A Generator is drawn from: the second fit continues its stream and differs.
    gen = np.random.default_rng(3)
    d = VAEEstimator(epochs=2, random_state=gen, **SMALL)
    first = d.fit(X).transform(X)
    np.testing.assert_array_equal(first, a.transform(X))  # the same stream as the int 3
    assert not np.array_equal(d.fit(X).transform(X), first)


def test_score_is_the_mean_elbo_and_improves_with_fitting():
    X = _data()
    untrained = VAE(16, hidden_dims=(12,), latent_dim=2, seed=np.random.default_rng(5))
    before = elbo(untrained, X, rng=np.random.default_rng(0))["elbo"]
    short = VAEEstimator(epochs=1, random_state=5, **SMALL).fit(X)
    long = VAEEstimator(epochs=40, random_state=5, **SMALL).fit(X)
    assert before < short.score(X) < long.score(X)
    assert long.score(X) > before + 3.0  # nats per example (4.5 seen): a clear gain, not noise
    assert long.score(X) == long.score(X)  # the default noise is fixed
    assert long.score(X) == elbo(long.model_, X, rng=np.random.default_rng(0))["elbo"]


def test_use_before_fit_and_bad_settings_are_clear_errors():
    est = VAEEstimator(**SMALL)
    for call in (lambda: est.transform(_data()), lambda: est.inverse_transform(np.zeros((1, 2))),
                 lambda: est.score(_data()), lambda: est.sample(3)):
        with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
            call()
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    with pytest.raises(TypeError, match="random_state must be"):
        VAEEstimator(random_state="seven", **SMALL).fit(_data())
    with pytest.raises(ValueError, match="expected \\(N, D\\)"):
        VAEEstimator(**SMALL).fit(np.zeros((2, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        VAEEstimator(epochs=0, **SMALL).fit(_data())
