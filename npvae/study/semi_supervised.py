"""Semi-supervised learning with few labels: hiding labels, and the model M1.

    y_partial = hide_labels(y, 100, rng)          # 10 labels per class kept, the rest -1
    m1 = M1(vae, classifier)                      # a trained VAE, and a classifier trained on
    m1.predict(x_test)                            #   m1.features(x_labelled)

M1 (Kingma, Rezende, Mohamed & Welling 2014) is two models in sequence: a VAE trained on every
image, labelled or not, and a classifier trained on the labelled images' posterior means
E_q[z|x] = mu(x), (N, Z). The VAE learns where the data lies from all images; the classifier
sees only Z numbers per image, and only the labelled ones. ``npvae.run.semi_supervised.train_m1``
trains both; the semi-supervised model M2 is ``npvae.models.m2.SemiSupervisedVAE``.

M1+M2, the paper's stacked model, is the same pipeline with M2 as the classifier: M2 trained on
the posterior means of every image, labelled (y) or not (-1), and its q(y|mu(x)) the
prediction (``npvae.run.semi_supervised.train_m1_m2``; ``M1(vae, m2)``).

Shapes: N examples, D data, Z latent, C classes.
"""

import numpy as np

from ..core import checks
from ..core.batching import minibatches

UNLABELLED = -1  # scikit-learn's mark of an unlabelled example


def hide_labels(y, n_labels, rng, n_classes=None):
    """Keep ``n_labels`` labels, balanced across the classes, and mark the rest -1.

    Each class keeps n_labels // C labels, drawn at random from ``rng`` without replacement;
    the remainder (n_labels mod C) goes one each to classes drawn at random. n_labels ≥ N keeps
    every label. y : (N,) ints in [0, C)  ->  (N,) int64, -1 where hidden.
    """
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1 or (len(y) and y.min() < 0):
        raise ValueError("y must be a 1-D int array of classes in [0, C), all labelled.")
    rng = checks.as_generator(rng, "rng")
    C = int(y.max()) + 1 if n_classes is None else n_classes
    n_labels = checks.positive_int(n_labels, "n_labels")
    if n_labels >= len(y):
        return y.astype(np.int64)
    if n_labels < C:
        raise ValueError(f"n_labels = {n_labels} is fewer than the {C} classes; keep at least "
                         f"one label per class.")
    per_class = np.full(C, n_labels // C)
    per_class[rng.choice(C, n_labels % C, replace=False)] += 1
    members = [np.flatnonzero(y == c) for c in range(C)]
    short = [c for c in range(C) if len(members[c]) < per_class[c]]
    if short:
        raise ValueError(f"class {short[0]} has {len(members[short[0]])} examples, fewer than "
                         f"the {per_class[short[0]]} labels asked of it; ask for fewer labels.")
    keep = np.concatenate([rng.choice(members[c], per_class[c], replace=False)
                           for c in range(C)])
    out = np.full(len(y), UNLABELLED, dtype=np.int64)
    out[keep] = y[keep]
    return out


def posterior_means(vae, x, batch_size=1000):
    """E_q[z|x] = mu(x) for every example, encoded in batches: (N, D)  ->  (N, Z)."""
    parts = [vae.encode(x[index])[0] for _, index in minibatches(len(x), batch_size)]
    return np.concatenate(parts)


class M1:
    """A VAE's posterior means as the features of a classifier (M1, and M1+M2).

    vae : a trained ``npvae.VAE``; classifier : a model with input_dim = Z and ``predict`` /
    ``predict_proba``, trained on ``features``: an ``npvae.Classifier`` on those of the
    labelled examples (M1), or a ``SemiSupervisedVAE`` on those of every example (M1+M2).
    """

    def __init__(self, vae, classifier):
        if classifier.input_dim != vae.latent_dim:
            raise ValueError(f"the classifier takes {classifier.input_dim} inputs, but the "
                             f"VAE's features are its {vae.latent_dim} posterior means; build "
                             f"it as Classifier({vae.latent_dim}, n_classes, ...) or "
                             f"SemiSupervisedVAE({vae.latent_dim}, n_classes, ...).")
        self.vae, self.classifier = vae, classifier

    def features(self, x):
        """The posterior means mu(x): (N, D)  ->  (N, Z)."""
        return posterior_means(self.vae, x)

    def predict_proba(self, x):
        """q(y | mu(x)): (N, D)  ->  (N, C)."""
        return self.classifier.predict_proba(self.features(x))

    def predict(self, x):
        """argmax_y q(y | mu(x)): (N, D)  ->  (N,) ints."""
        return self.classifier.predict(self.features(x))


def accuracy(model, x, y):
    """The share of examples whose predicted class is y: a float in [0, 1]."""
    return float((model.predict(x) == np.asarray(y)).mean())


def oversample_labelled(x, y, times):
    """The labelled examples (y ≥ 0) repeated ``times`` times after the unlabelled ones, so that
    uniform minibatches meet them ``times`` times per epoch: (x', y'), (N', D) and (N',).

    With 100 labels among 8,000 images a batch of 100 holds ~1.2 labelled examples; M2's
    classifier then sees its labels once per epoch of ~80 steps. Repeating them is Kingma et
    al.'s labelled minibatch at every step, in data the training loop can shuffle."""
    times = checks.positive_int(times, "times")
    lab = np.flatnonzero(np.asarray(y) >= 0)
    unl = np.flatnonzero(np.asarray(y) < 0)
    order = np.concatenate([unl, np.tile(lab, times)])
    return x[order], np.asarray(y)[order]
