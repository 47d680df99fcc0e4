"""A scikit-learn-style estimator around the VAE, without depending on scikit-learn.

    est = VAEEstimator(latent_dim=2, epochs=10, random_state=0).fit(X)
    Z = est.transform(X)            # posterior means, (N, Z): the VAE as non-linear PCA
    X_hat = est.inverse_transform(Z)
    est.score(X)                    # mean ELBO in nats per example, higher is better

It follows scikit-learn's conventions, so it reads like any other estimator: ``__init__`` only
stores its arguments (``get_params`` reads them back by name, ``set_params`` sets them, so
``type(est)(**est.get_params())`` is an unfitted copy); ``fit`` returns ``self``; what fitting
learned ends in an underscore (``model_``, ``history_``, ``n_features_in_``); and
``random_state`` is an int (the same results every fit), a Generator (drawn from, so
successive fits differ) or None (fresh entropy).

It also passes scikit-learn's own checks (``check_estimator``, ``cross_val_score``,
``GridSearchCV``) without depending on scikit-learn: ``__sklearn_tags__`` imports it only when
scikit-learn itself asks. Integer input is converted to floats; a float32 or float64 X gives
results of its own dtype; sparse, empty or ragged input, and a transform of another number of
features than fit saw, are refused with a message saying what was expected.

Shapes: N examples, D features, Z latent dimensions.
"""

import inspect

import numpy as np

from ..core.errors import NpvaeError
from ..study.evaluate import elbo
from .training import train
from ..core.vae import DEFAULT_HIDDEN_DIMS, VAE


class NotFittedError(NpvaeError, ValueError, AttributeError):
    """The estimator was used before ``fit`` (the type scikit-learn uses is a ValueError and an
    AttributeError too)."""


class VAEEstimator:
    """A VAE with ``fit``, ``transform``, ``inverse_transform``, ``score`` and ``sample``.

    Parameters
    ----------
    latent_dim, hidden_dims, likelihood, activation, sigma : the ``VAE``'s architecture.
    epochs, batch_size, lr, beta, warmup_epochs, free_bits, binarize : ``npvae.train``'s
        settings. With ``binarize="dynamic"`` the pixels are redrawn as 0/1 each epoch.
    dtype : np.float32 or np.float64, of the model and of what it returns.
    random_state : int, np.random.Generator or None. It seeds the initialisation, the
        minibatches and the noise of ``fit``, and ``sample`` when given no rng.
    verbose : bool, print a line per epoch.

    Attributes (after ``fit``)
    --------------------------
    model_ : VAE, the trained model.
    history_ : list of dicts, one per epoch (see ``npvae.train``).
    n_features_in_ : int, D.
    """

    def __init__(self, latent_dim=2, hidden_dims=DEFAULT_HIDDEN_DIMS, likelihood="bernoulli",
                 activation="relu", sigma=1.0, epochs=10, batch_size=128, lr=1e-3, beta=1.0,
                 warmup_epochs=0, free_bits=0.0, binarize=None, dtype=np.float32,
                 random_state=None, verbose=False):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.likelihood = likelihood
        self.activation = activation
        self.sigma = sigma
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.warmup_epochs = warmup_epochs
        self.free_bits = free_bits
        self.binarize = binarize
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------ parameters

    @classmethod
    def _param_names(cls):
        """The names of ``__init__``'s arguments, which are the estimator's parameters."""
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep=True):
        """The parameters as a dict, {name: value} (``deep`` is accepted for compatibility:
        no parameter is itself an estimator)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set parameters by name and return self; an unknown name is a ValueError. A fitted
        model is kept until the next ``fit``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"VAEEstimator has no parameter {name!r}; valid parameters "
                                 f"are {', '.join(valid)}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {name: p.default
                    for name, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if not _same(value, defaults[name])]
        return f"{type(self).__name__}({', '.join(changed)})"

    # ------------------------------------------------------------------------ fitting

    def _rng(self):
        """random_state as a Generator: a Generator itself, or a new one seeded by an int/None."""
        if isinstance(self.random_state, np.random.Generator):
            return self.random_state
        if self.random_state is None or (isinstance(self.random_state, (int, np.integer))
                                         and not isinstance(self.random_state, bool)):
            return np.random.default_rng(self.random_state)
        raise TypeError(f"random_state must be an int, a numpy Generator or None, got "
                        f"{type(self.random_state).__name__}.")

    def __sklearn_tags__(self):
        """scikit-learn's description of this estimator (scikit-learn ≥ 1.6 asks for it;
        imported here, so npvae never needs scikit-learn otherwise): a transformer that needs
        no y, takes dense 2-D float input and keeps float32 and float64."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    input_tags=InputTags(two_d_array=True, sparse=False, allow_nan=False),
                    non_deterministic=self.random_state is None)

    def fit(self, X, y=None):
        """Train a new VAE on X, (N, D); y is ignored. Returns self."""
        rng = self._rng()
        X = _features(X)
        model = VAE(X.shape[1], hidden_dims=self.hidden_dims, latent_dim=self.latent_dim,
                    likelihood=self.likelihood, activation=self.activation, sigma=self.sigma,
                    dtype=self.dtype, seed=rng)
        history = train(model, X, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                        beta=self.beta, warmup_epochs=self.warmup_epochs,
                        free_bits=self.free_bits, binarize=self.binarize, rng=rng,
                        verbose=self.verbose)
        self.model_, self.history_, self.n_features_in_ = model, history, X.shape[1]
        return self

    def _fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) "
                                 f"before using it.")
        return self.model_

    # ------------------------------------------------------------------------ using the model

    def _checked(self, X, n_features, name="X"):
        """X as ``_features`` gives it, with the number of columns the model takes."""
        X = _features(X, name)
        if X.shape[1] != n_features:
            raise ValueError(f"{name} has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {n_features} features as input.")
        return X

    def transform(self, X):
        """The posterior means mu(x) of q(z|x): X (N, D)  ->  (N, Z), of X's float dtype."""
        model = self._fitted()
        X = self._checked(X, self.n_features_in_)
        return model.encode(X)[0].astype(X.dtype, copy=False)

    def fit_transform(self, X, y=None):
        """fit(X), then transform(X)."""
        return self.fit(X, y).transform(X)

    def inverse_transform(self, Z):
        """The mean of p(x|z) at each z: Z (N, Z)  ->  (N, D), of Z's float dtype."""
        model = self._fitted()
        Z = self._checked(Z, model.latent_dim, "Z")
        return model.decode(Z).astype(Z.dtype, copy=False)

    def score(self, X, y=None, rng=None):
        """The mean ELBO of X in nats per example (higher is better), one z per example.

        rng : Generator for the noise; by default one seeded with 0, so that repeated calls
        (and two estimators scored on the same X) use the same noise.
        """
        rng = np.random.default_rng(0) if rng is None else rng
        model = self._fitted()
        return elbo(model, self._checked(X, self.n_features_in_), rng=rng)["elbo"]

    def sample(self, n, rng=None, draw=False):
        """n images from the model, z ~ N(0, I): the mean of p(x|z), or with draw=True a draw
        x ~ p(x|z) (see ``VAE.sample``): (n, D).

        rng : Generator, or None to draw from ``random_state``.
        """
        model = self._fitted()
        return model.sample(n, rng=self._rng() if rng is None else rng, draw=draw)


def _features(X, name="X"):
    """X as a dense (N, D) float array, N, D ≥ 1: integers and booleans converted to float64,
    float32 and float64 kept; sparse matrices, text, and empty or 1-D input refused."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix, and sparse input is not supported: pass a "
                        f"dense array, e.g. {name}.toarray().")
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} holds complex numbers; pass "
                         f"real features.")
    if X.dtype.kind in "biu":
        X = X.astype(np.float64)
    elif X.dtype.kind != "f" or X.dtype.itemsize < 4:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:  # text or objects that are not numbers
            raise type(exc)(f"{name} holds values that are not numbers: {exc}.") from None
    if X.ndim != 2:
        raise ValueError(f"{name} has shape {X.shape}; expected (N, D) = (examples, features), "
                         f"a 2-D array. Reshape your data, e.g. flatten images with "
                         f"{name}.reshape(len({name}), -1).")
    if X.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required.")
    if X.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required.")
    return X


def _same(a, b):
    """Whether a parameter equals its default (tuples, numbers, dtypes and None)."""
    try:
        return bool(a == b) if not isinstance(a, np.random.Generator) else False
    except (TypeError, ValueError):
        return False
