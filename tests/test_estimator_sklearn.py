"""Issue 24 item 9: VAEEstimator is a well-behaved scikit-learn estimator without depending on
scikit-learn: tags, integer input converted, the input's float dtype kept, the number of
features checked in transform, clear errors for sparse, empty or complex input. The checks
that need scikit-learn (the ``sklearn`` extra) are skipped without it."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse

from npvae import VAEEstimator


def small(**kw):
    return VAEEstimator(latent_dim=2, hidden_dims=(8,), epochs=2, batch_size=16,
                        likelihood="gaussian", random_state=0, **kw)


X = np.random.default_rng(0).random((40, 6))


def test_integer_input_is_converted():
    est = small().fit((X * 10).astype(np.int64))
    assert est.transform((X * 10).astype(np.int32)).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_inputs_float_dtype_is_kept(dtype):
    est = small().fit(X.astype(dtype))
    Z = est.transform(X.astype(dtype))
    assert Z.dtype == dtype and est.inverse_transform(Z).dtype == dtype


def test_transform_checks_the_number_of_features():
    est = small().fit(X)
    with pytest.raises(ValueError, match="X has 5 features, but VAEEstimator is expecting 6"):
        est.transform(X[:, :5])
    with pytest.raises(ValueError, match="Z has 3 features, but VAEEstimator is expecting 2"):
        est.inverse_transform(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X has 7 features"):
        est.score(np.hstack([X, X[:, :1]]))


@pytest.mark.parametrize("bad, error, message", [
    (scipy.sparse.csr_matrix(X), TypeError, "sparse input is not supported.*toarray"),
    (np.zeros((0, 6)), ValueError, "0 sample"),
    (np.zeros((5, 0)), ValueError, "0 feature"),
    (X.astype(complex), ValueError, "Complex data not supported"),
    (np.array([["a", "b"], ["c", "d"]]), ValueError, "not numbers"),
    (X[0], ValueError, r"expected \(N, D\) = \(examples, features\), a 2-D array"),
])
def test_bad_input_is_refused_clearly(bad, error, message):
    with pytest.raises(error, match=message):
        small().fit(bad)


def test_scikit_learn_is_never_imported_by_npvae():
    code = ("import sys, numpy as np, npvae\n"
            "est = npvae.VAEEstimator(hidden_dims=(4,), epochs=1).fit(np.random.rand(20, 3))\n"
            "est.transform(np.random.rand(2, 3))\n"
            "assert 'sklearn' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore:Estimator VAEEstimator does not inherit")  # by design
@pytest.mark.filterwarnings("ignore:Skipping check")
def test_check_estimator_passes():
    pytest.importorskip("sklearn", minversion="1.6")
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(small(dtype=np.float64), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 40


def test_cross_val_score_and_grid_search_run():
    pytest.importorskip("sklearn", minversion="1.6")
    from sklearn.model_selection import GridSearchCV, cross_val_score

    scores = cross_val_score(small(), X, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(small(), {"latent_dim": [1, 2]}, cv=2).fit(X)
    assert search.best_params_["latent_dim"] in (1, 2)
