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

    def fit(self, X, y=None):
        """Train a new VAE on X, (N, D); y is ignored. Returns self."""
        rng = self._rng()
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X has shape {X.shape}; expected (N, D) = (examples, features). "
                             f"Flatten images first, e.g. X.reshape(len(X), -1).")
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

    def transform(self, X):
        """The posterior means mu(x) of q(z|x): X (N, D)  ->  (N, Z)."""
        return self._fitted().encode(X)[0]

    def fit_transform(self, X, y=None):
        """fit(X), then transform(X)."""
        return self.fit(X, y).transform(X)

    def inverse_transform(self, Z):
        """The mean of p(x|z) at each z: Z (N, Z)  ->  (N, D)."""
        return self._fitted().decode(Z)

    def score(self, X, y=None, rng=None):
        """The mean ELBO of X in nats per example (higher is better), one z per example.

        rng : Generator for the noise; by default one seeded with 0, so that repeated calls
        (and two estimators scored on the same X) use the same noise.
        """
        rng = np.random.default_rng(0) if rng is None else rng
        return elbo(self._fitted(), X, rng=rng)["elbo"]

    def sample(self, n, rng=None, draw=False):
        """n images from the model, z ~ N(0, I): the mean of p(x|z), or with draw=True a draw
        x ~ p(x|z) (see ``VAE.sample``): (n, D).

        rng : Generator, or None to draw from ``random_state``.
        """
        model = self._fitted()
        return model.sample(n, rng=self._rng() if rng is None else rng, draw=draw)


def _same(a, b):
    """Whether a parameter equals its default (tuples, numbers, dtypes and None)."""
    try:
        return bool(a == b) if not isinstance(a, np.random.Generator) else False
    except (TypeError, ValueError):
        return False
