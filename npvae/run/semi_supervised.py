"""Training the semi-supervised models with the one training loop (``npvae.train``).

    m1 = train_m1(x, y_partial, vae=npvae.VAE(784, seed=0), classifier_epochs=100)
    m2 = train_m2(npvae.SemiSupervisedVAE(784, 10, seed=0), x, y_partial, epochs=5)

y_partial holds -1 for an unlabelled example (``npvae.study.semi_supervised.hide_labels``).
Shapes: N examples, D data, Z latent.
"""

import numpy as np

from ..core import checks
from ..models.classifier import Classifier
from ..models.m2 import as_partial_labels
from ..study.semi_supervised import M1, oversample_labelled, posterior_means
from .training import train


def train_m1(x, y, *, vae, vae_epochs=10, classifier=None, classifier_epochs=100,
             batch_size=100, lr=1e-3, binarize="dynamic", rng=None, verbose=False):
    """M1: train ``vae`` on every image of x, then a classifier on the posterior means of the
    labelled ones (y ≥ 0). Returns an ``M1`` (``predict``, ``predict_proba``).

    x : (N, D); y : (N,) ints, -1 for unlabelled. classifier : an untrained
    ``Classifier(Z, C, ...)``, or None for a softmax regression on the Z means.
    vae_epochs = 0 uses ``vae`` as it is (already trained).
    rng : the Generator of both trainings (None: each model's own).
    """
    C = int(np.max(y)) + 1
    y = as_partial_labels(y, C, len(x))
    lab = np.flatnonzero(y >= 0)
    if len(lab) == 0:
        raise ValueError("y has no labels (all -1); M1's classifier needs some labelled "
                         "examples.")
    rng = None if rng is None else checks.as_generator(rng, "rng")
    if vae_epochs:
        train(vae, x, epochs=vae_epochs, batch_size=batch_size, lr=lr, binarize=binarize,
              rng=rng, verbose=verbose)
    if classifier is None:
        classifier = Classifier(vae.latent_dim, C, hidden_dims=(), seed=rng)
    features = posterior_means(vae, x[lab])  # (N_l, Z)
    train(classifier, features, y=y[lab], epochs=classifier_epochs,
          batch_size=min(batch_size, len(lab)), lr=lr, rng=rng, verbose=verbose)
    return M1(vae, classifier)


def train_m2(model, x, y, *, epochs=5, repeat_labelled=1, batch_size=100, lr=1e-3,
             binarize="dynamic", rng=None, hooks=(), verbose=False):
    """Train M2 (``SemiSupervisedVAE``) on x with labels y (-1 for unlabelled), the labelled
    examples repeated ``repeat_labelled`` times per epoch (``oversample_labelled``).
    Returns the training history."""
    x, y = oversample_labelled(x, model.check_labels(y, len(x)), repeat_labelled)
    return train(model, x, y=y, epochs=epochs, batch_size=batch_size, lr=lr,
                 binarize=binarize, rng=rng, hooks=hooks, verbose=verbose)
