"""The softmax classifier: its terminal node, every gradient, training, saving and errors."""

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

import npvae
from npvae.models.classifier import Classifier, categorical_nll, log_softmax
from npvae.verify.gradcheck import model_checks, numeric_grad, rel_error


def _blobs(n, rng, C=3, D=6, spread=0.3):
    """n points around C well-separated centres: (n, D) float32, labels (n,)."""
    centres = 3 * np.eye(C, D)
    y = rng.integers(0, C, n)
    return (centres[y] + spread * rng.standard_normal((n, D))).astype(np.float32), y


def test_categorical_nll_matches_scipy_and_its_gradient_is_softmax_minus_onehot():
    rng = np.random.default_rng(0)
    logits, y = 3 * rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    nll, dlogits = categorical_nll(logits, y)
    reference = -scipy.special.log_softmax(logits, axis=1)[np.arange(5), y]
    np.testing.assert_allclose(nll, reference, rtol=1e-12)
    np.testing.assert_allclose(dlogits, scipy.special.softmax(logits, axis=1) - np.eye(4)[y],
                               atol=1e-12)
    w = rng.uniform(0.5, 1.5, 5)  # each example weighted, so each row's gradient is checked
    numeric = numeric_grad(lambda: float(w @ categorical_nll(logits, y)[0]), logits)
    assert rel_error(dlogits * w[:, None], numeric) < 1e-8


@settings(deadline=None, max_examples=30)
@given(st.floats(-1e4, 1e4), st.integers(0, 2))
def test_categorical_nll_is_finite_and_exact_at_extreme_logits(big, label):
    logits = np.array([[big, 0.0, -big]])
    nll, dlogits = categorical_nll(logits, np.array([label]))
    assert np.isfinite(nll).all() and np.isfinite(dlogits).all()
    assert nll[0] >= 0
    np.testing.assert_allclose(dlogits.sum(), 0.0, atol=1e-12)  # Σ softmax - 1 = 0
    np.testing.assert_allclose(np.exp(log_softmax(logits)).sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("hidden, activation", [((), "relu"), ((5,), "tanh"),
                                                ((5, 4), "relu"), ((7,), "softplus")])
def test_every_parameter_matches_finite_differences(hidden, activation):
    rng = np.random.default_rng(1)
    clf = Classifier(6, 3, hidden_dims=hidden, activation=activation, dtype=np.float64, seed=2)
    x, y = rng.standard_normal((5, 6)), np.array([0, 1, 2, 1, 0])
    for check in model_checks(clf, x, y):
        assert check.ok, (check.name, check.error)


def test_loss_is_the_mean_cross_entropy_of_an_independent_forward():
    rng = np.random.default_rng(3)
    clf = Classifier(6, 3, hidden_dims=(5,), dtype=np.float64, seed=0)
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    p = clf.params
    h = np.maximum(x @ p["classifier.0.W"] + p["classifier.0.b"], 0)
    logits = h @ p["logits.W"] + p["logits.b"]
    expected = -scipy.special.log_softmax(logits, axis=1)[np.arange(8), y].mean()
    loss, _, stats = clf.loss_and_grads(x, y)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert stats["recon"] == loss and stats["kl"] == 0.0
    np.testing.assert_allclose(clf.predict_proba(x), scipy.special.softmax(logits, axis=1),
                               rtol=1e-10)
    np.testing.assert_array_equal(clf.predict(x), logits.argmax(axis=1))
    np.testing.assert_allclose(clf.cross_entropy(x, y),
                               -scipy.special.log_softmax(logits, axis=1)[np.arange(8), y])


def test_the_per_example_loss_does_not_depend_on_the_batch():
    rng = np.random.default_rng(4)
    clf = Classifier(6, 3, hidden_dims=(5,), dtype=np.float64, seed=0)
    x, y = rng.standard_normal((6, 6)), rng.integers(0, 3, 6)
    singles = [clf.loss_and_grads(x[i:i + 1], y[i:i + 1])[0] for i in range(6)]
    assert clf.loss_and_grads(x, y)[0] == pytest.approx(np.mean(singles), rel=1e-12)
    order = rng.permutation(6)
    assert clf.loss_and_grads(x[order], y[order])[0] == pytest.approx(np.mean(singles))


def test_trains_through_npvae_train_and_learns_separable_classes():
    rng = np.random.default_rng(5)
    x, y = _blobs(600, rng)
    x_test, y_test = _blobs(300, rng)
    clf = Classifier(6, 3, hidden_dims=(16,), seed=0)
    before = float(clf.cross_entropy(x_test, y_test).mean())
    history = npvae.train(clf, x, y=y, epochs=5, batch_size=50, lr=1e-2, x_val=x_test,
                          y_val=y_test, verbose=False)
    assert clf.params["logits.W"].dtype == np.float32
    assert history[-1]["val_loss"] < 0.2 < before
    assert (clf.predict(x_test) == y_test).mean() > 0.97
    assert history[-1]["loss"] < history[0]["loss"]


def test_softmax_regression_is_linear_in_its_logits():
    clf = Classifier(6, 4, hidden_dims=(), seed=0)
    assert sorted(clf.params) == ["logits.W", "logits.b"]
    assert clf.params["logits.W"].shape == (6, 4)


def test_save_and_load_give_the_same_predictions(tmp_path):
    rng = np.random.default_rng(6)
    x, y = _blobs(200, rng)
    clf = Classifier(6, 3, hidden_dims=(8,), activation="tanh", seed=0)
    npvae.train(clf, x, y=y, epochs=2, batch_size=50, verbose=False, out_dir=tmp_path / "run")
    loaded = npvae.load(tmp_path / "run")
    assert type(loaded) is Classifier and loaded.config == clf.config
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))
    path = npvae.save(tmp_path / "c.npz", clf)
    np.testing.assert_array_equal(npvae.load(path).params["logits.W"], clf.params["logits.W"])


def test_clear_errors():
    clf = Classifier(6, 3, hidden_dims=(4,), seed=0)
    x = np.zeros((2, 6), np.float32)
    with pytest.raises(ValueError, match="labels must be in"):
        clf.loss_and_grads(x, np.array([0, 3]))
    with pytest.raises(TypeError, match="integers"):
        clf.loss_and_grads(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="n_classes"):
        Classifier(6, 1)
    with pytest.raises(ValueError, match="activation"):
        Classifier(6, 3, activation="swish")
    with pytest.raises(TypeError, match="labels"):
        npvae.train(clf, x, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="no ELBO"):
        npvae.train(clf, x, y=np.array([0, 1]), beta=0.5, epochs=1, verbose=False)


def test_log_softmax_normalises_the_last_axis_of_any_array():
    logits = 5 * np.random.default_rng(1).standard_normal((2, 3, 4))  # (K, B, C)
    np.testing.assert_allclose(log_softmax(logits), scipy.special.log_softmax(logits, axis=-1),
                               atol=1e-12)


def test_the_stats_report_the_batchs_accuracy_at_the_argmax():
    rng = np.random.default_rng(2)
    x, y = _blobs(40, rng)
    model = Classifier(6, 3, hidden_dims=(5,), seed=0)
    model.params["logits.b"][:] = np.array([0.0, 50.0, 0.0])  # every prediction is class 1
    stats = model.loss_and_grads(x, y)[2]
    assert stats["accuracy"] == pytest.approx(np.mean(y == 1))
    assert stats["accuracy"] == pytest.approx(np.mean(model.predict(x) == y))
