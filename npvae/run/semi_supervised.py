"""Training the semi-supervised models with the one training loop (``npvae.train``).

    m1 = train_m1(x, y_partial, vae=npvae.VAE(784, seed=0), classifier_epochs=100)
    m2 = train_m2(npvae.SemiSupervisedVAE(784, 10, seed=0), x, y_partial, epochs=5)
    m12 = train_m1_m2(x, y_partial, vae=npvae.VAE(784, seed=0),
                      m2=npvae.SemiSupervisedVAE(20, 10, likelihood="gaussian-learned"))

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
    _train_vae(vae, x, vae_epochs, batch_size, lr, binarize, rng, verbose)
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


def _train_vae(vae, x, epochs, batch_size, lr, binarize, rng, verbose):
    """M1's first stage: the VAE on every image, no label (epochs = 0: used as it is)."""
    if epochs:
        train(vae, x, epochs=epochs, batch_size=batch_size, lr=lr, binarize=binarize, rng=rng,
              verbose=verbose)


def train_m1_m2(x, y, *, vae, m2, vae_epochs=10, m2_epochs=50, repeat_labelled=1,
                batch_size=100, lr=1e-3, m2_lr=3e-3, binarize="dynamic", rng=None,
                verbose=False):
    """M1+M2 (Kingma et al. 2014's stacked model): train ``vae`` on every image of x (M1),
    then M2 on the posterior means mu(x) of every image, labelled (y ≥ 0) or not (-1).
    Returns ``M1(vae, m2)``, which predicts with M2's q(y | mu(x)).

    x : (N, D); y : (N,) ints, -1 for unlabelled. m2 : an untrained
    ``SemiSupervisedVAE(Z, C, likelihood="gaussian-learned" or "gaussian", ...)``: the means
    are real numbers, not pixels, so not Bernoulli (and not binarized).
    vae_epochs = 0 uses ``vae`` as it is (already trained). m2_epochs, repeat_labelled, m2_lr :
    M2's training (``train_m2``). rng : the Generator of both trainings (None: their own).
    """
    if m2.config.likelihood == "bernoulli":
        raise ValueError("M1+M2's M2 models the VAE's posterior means, real numbers: build it "
                         "with likelihood='gaussian-learned' (or 'gaussian').")
    rng = None if rng is None else checks.as_generator(rng, "rng")
    _train_vae(vae, x, vae_epochs, batch_size, lr, binarize, rng, verbose)
    model = M1(vae, m2)
    train_m2(m2, model.features(x), y, epochs=m2_epochs, repeat_labelled=repeat_labelled,
             batch_size=batch_size, lr=m2_lr, binarize=None, rng=rng, verbose=verbose)
    return model
