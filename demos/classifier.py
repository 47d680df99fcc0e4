"""A generative model as a classifier: Bayes' rule on a conditional VAE.

    python demos/classifier.py                       # MNIST (the bundled split offline)
    python demos/classifier.py --dataset fashion-mnist

A CVAE models p(x|y) for each class y. Bayes' rule turns it into a classifier,

    p(y|x) = p(x|y) p(y) / Σ_y' p(x|y') p(y'),

so the demo estimates log p(x|y) for every class by importance sampling (k samples each,
``npvae.study.evaluate.class_log_likelihoods``), adds log p(y) from the training labels' frequencies,
and predicts the argmax (``CVAE.classify``). Nothing in training saw a classification loss.

It prints the accuracy on the held-out test images and writes classifier_confusion.png.
"""

import sys

import numpy as np

import _common
import npvae
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, latent=2,
                       out="figures/classifier/{dataset}")
    p.add_argument("--k", type=int, default=20, help="importance samples per class and image")
    p.add_argument("--n-classify", type=int, default=2000, help="test images to classify")
    return p


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    _, y_train, _, y_val = _common.hold_out(d, args.seed)  # the labels of the same split
    model = _common.model_from_args(args, cls=npvae.CVAE, n_classes=10)
    _common.train(model, args, x_train, x_val, rng, y=y_train.astype(np.int64),
                  y_val=y_val.astype(np.int64))
    prior = np.bincount(y_train, minlength=10) / len(y_train)  # p(y) from the training labels
    n = min(args.n_classify, len(x_test))
    labels, _ = npvae.evaluate.classify(model, x_test[:n], k=args.k, rng=np.random.default_rng([args.seed, 5]),
                               prior=prior)
    truth = d.y_test[:n].astype(np.int64)
    accuracy = float((labels == truth).mean())
    print(f"accuracy of the CVAE as a Bayes classifier: {accuracy:.1%} on {n:,} held-out test "
          f"images (k = {args.k} importance samples per class)")
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (truth, labels), 1)
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    _common.save_figures({"classifier_confusion": plots.confusion_matrix(
        confusion, args.dataset, context)}, args.out)
    return {"accuracy": accuracy, "confusion": confusion}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
