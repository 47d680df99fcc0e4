"""Generative against discriminative, with few labels and many: the crossover, measured.

    python demos/semi_supervised.py --test-split-only            # the bundled MNIST split
    python demos/semi_supervised.py --test-split-only --quick    # 2 draws, 100 and all labels
    python demos/semi_supervised.py --dataset fashion-mnist

For each number of labels (100, 300, 1,000 and all) and several random draws of which images
keep their label (balanced across the classes, ``hide_labels``), six classifiers are trained
and scored on the held-out test images:

    softmax    softmax regression (npvae.Classifier, hidden_dims=()) on the labelled images alone
    MLP        a 784-400-10 softmax MLP on the labelled images alone
    CVAE-Bayes a CVAE trained on the labelled images alone, classified by Bayes' rule
               (argmax_y log p(x|y) + log p(y), ``npvae.evaluate.classify``)
    M1         a VAE trained on every training image, then an MLP on the posterior means of the
               labelled ones (the VAE is trained once per seed: it sees no label)
    M2         the semi-supervised VAE (npvae.SemiSupervisedVAE) on every image, y = -1 for the
               unlabelled ones; its classifier q(y|x) is scored
    M1+M2      Kingma et al.'s stacked model: M2 (Gaussian, learned variance) trained on M1's
               posterior means of every image (M1's VAE, reused), scored by q(y|mu(x))

It prints the test accuracy, mean ± sd over the draws, for each method and number of labels,
and draws semi_supervised.png (accuracy against labels, with the spread). The numbers and
what they say about the source texts' claims are in docs/semi_supervised.md.
"""

import sys
import time

import numpy as np

import _common
import npvae
from npvae.models.classifier import Classifier
from npvae.models.m2 import SemiSupervisedVAE
from npvae.run import plots
from npvae.run.semi_supervised import train_m1, train_m1_m2, train_m2
from npvae.study.semi_supervised import accuracy, hide_labels

METHODS = ("softmax", "MLP", "CVAE-Bayes", "M1", "M2", "M1+M2")


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, out="figures/semi_supervised/{dataset}")
    p.add_argument("--labels", type=int, nargs="+", default=[100, 300, 1000, 0],
                   help="numbers of labelled training images to try (0: all)")
    p.add_argument("--draws", type=int, default=3, help="random draws of the labelled subset")
    p.add_argument("--steps", type=int, default=1000,
                   help="Adam steps of each model trained on the labelled images alone (and of "
                        "M1's classifier), in batches of labels/10 (10 to --batch-size)")
    p.add_argument("--m2-epochs", type=int, default=4, help="M2's epochs over the images")
    p.add_argument("--m2-hidden", type=int, default=200,
                   help="hidden size of M2's encoder, decoder and classifier")
    p.add_argument("--alpha", type=float, default=200.0,
                   help="M2's weight of the labelled cross-entropy")
    p.add_argument("--labelled-share", type=float, default=0.25,
                   help="M2 repeats the labelled images until they are this share of the "
                        "unlabelled ones (oversample_labelled)")
    p.add_argument("--m1m2-epochs", type=int, default=50,
                   help="M1+M2: epochs of its M2 over the posterior means")
    p.add_argument("--m1m2-lr", type=float, default=3e-3, help="M1+M2: its M2's learning rate")
    p.add_argument("--m1m2-alpha", type=float, default=None,
                   help="M1+M2: its M2's weight of the labelled cross-entropy (None: 0.1 times "
                        "the training images, as Kingma et al.)")
    p.add_argument("--k", type=int, default=10, help="importance samples per class (Bayes rule)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--quick", action="store_true",
                   help="a quick look: 2 draws, 100 and all labels, 2 epochs of M2, 5 of M1's VAE, "
                        "20 of M1+M2's M2")
    return p


def _schedule(n, args):
    """(batch size, epochs) giving about --steps Adam steps on n labelled examples."""
    batch = min(args.batch_size, max(10, n // 10))
    return batch, max(1, -(-args.steps * batch // n))


def _fit_classifier(x, y, args, hidden, seed):
    clf = Classifier(x.shape[1], 10, hidden_dims=hidden, seed=seed)
    batch, epochs = _schedule(len(x), args)
    npvae.train(clf, x, y=y, epochs=epochs, batch_size=batch, lr=args.lr,
                rng=np.random.default_rng([seed, 1]), verbose=False)
    return clf


def _cvae_bayes(x, y, x_test, y_test, args, seed):
    cvae = npvae.CVAE(x.shape[1], 10, hidden_dims=tuple(args.hidden), latent_dim=args.latent,
                      seed=seed)
    batch, epochs = _schedule(len(x), args)
    npvae.train(cvae, x, y=y, epochs=epochs, batch_size=batch, lr=args.lr, binarize="dynamic",
                rng=np.random.default_rng([seed, 2]), verbose=False)
    predicted, _ = npvae.evaluate.classify(cvae, x_test, k=args.k,
                                           rng=np.random.default_rng([seed, 3]))
    return float((predicted == y_test).mean())


def _repeat(y_partial, args):
    """How often M2 meets each labelled image per epoch: --labelled-share of the unlabelled."""
    n_lab = int((y_partial >= 0).sum())
    return max(1, round(args.labelled_share * (len(y_partial) - n_lab) / n_lab))


def _m2(x, y_partial, x_test, y_test, args, seed):
    repeat = _repeat(y_partial, args)
    model = SemiSupervisedVAE(x.shape[1], 10, hidden_dims=(args.m2_hidden,),
                              latent_dim=args.latent, classifier_dims=(args.m2_hidden,),
                              alpha=args.alpha, seed=seed)
    train_m2(model, x, y_partial, epochs=args.m2_epochs, repeat_labelled=repeat,
             batch_size=args.batch_size, lr=args.lr, rng=np.random.default_rng([seed, 4]))
    return accuracy(model, x_test, y_test)


def _m1_m2(x, y_partial, x_test, y_test, vae, args, seed):
    repeat = _repeat(y_partial, args)
    alpha = 0.1 * len(x) if args.m1m2_alpha is None else args.m1m2_alpha
    m2 = SemiSupervisedVAE(vae.latent_dim, 10, hidden_dims=(args.m2_hidden,),
                           latent_dim=args.latent, classifier_dims=(args.m2_hidden,),
                           likelihood="gaussian-learned", alpha=alpha, seed=seed)
    model = train_m1_m2(x, y_partial, vae=vae, m2=m2, vae_epochs=0, m2_epochs=args.m1m2_epochs,
                        repeat_labelled=repeat, batch_size=args.batch_size,
                        m2_lr=args.m1m2_lr, rng=np.random.default_rng([seed, 7]))
    return accuracy(model, x_test, y_test)


def run_draw(n_labels, draw, d, vae, args):
    """Every method's test accuracy for one draw of n_labels labels: {method: accuracy}."""
    seed = args.seed * 1000 + draw
    y_partial = hide_labels(d.y_train, n_labels or len(d.y_train), np.random.default_rng(seed))
    lab = np.flatnonzero(y_partial >= 0)
    x_l, y_l = d.x_train[lab], y_partial[lab]
    out = {}
    for method in args.methods:
        started = time.process_time()
        if method in ("softmax", "MLP"):
            clf = _fit_classifier(x_l, y_l, args, () if method == "softmax" else (400,), seed)
            out[method] = accuracy(clf, d.x_test, d.y_test)
        elif method == "CVAE-Bayes":
            out[method] = _cvae_bayes(x_l, y_l, d.x_test, d.y_test, args, seed)
        elif method == "M1":
            batch, epochs = _schedule(len(lab), args)
            m1 = train_m1(d.x_train, y_partial, vae=vae, vae_epochs=0,
                          classifier=Classifier(vae.latent_dim, 10, hidden_dims=(100,),
                                                seed=seed),
                          classifier_epochs=epochs, batch_size=batch, lr=args.lr,
                          rng=np.random.default_rng([seed, 5]))
            out[method] = accuracy(m1, d.x_test, d.y_test)
        elif method == "M1+M2":
            out[method] = _m1_m2(d.x_train, y_partial, d.x_test, d.y_test, vae, args, seed)
        else:
            out[method] = _m2(d.x_train, y_partial, d.x_test, d.y_test, args, seed)
        print(f"  {n_labels or 'all':>5} labels, draw {draw}: {method:10s} "
              f"{out[method]:.2%}  ({time.process_time() - started:.0f} CPU s)", flush=True)
    return out


def summary_table(results, label_counts, n_train):
    """The accuracies as "mean ± sd" per method (rows) and number of labels (columns)."""
    names = [str(n or n_train) for n in label_counts]
    lines = [f"{'test accuracy %':14s}" + "".join(f"{n + ' labels':>17s}" for n in names)]
    for method, per_count in results.items():
        cells = [f"{100 * np.mean(a):6.1f} ± {100 * np.std(a):4.1f}" for a in per_count.values()]
        lines.append(f"{method:14s}" + "".join(f"{c:>17s}" for c in cells))
    return "\n".join(lines)


def figure(results, label_counts, n_train, context):
    import matplotlib.pyplot as plt
    with plots.style():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        xs = [n or n_train for n in label_counts]
        for method, per_count in results.items():
            acc = [100 * np.asarray(a) for a in per_count.values()]
            ax.errorbar(xs, [a.mean() for a in acc], yerr=[a.std() for a in acc], marker="o",
                        capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training images")
        ax.set_ylabel("test accuracy (%), mean ± sd over draws")
        ax.set_title(f"Generative against discriminative with few labels · {context}")
        ax.legend()
    return fig


def main(argv=None):
    args, _, d = _common.parse_and_load(build_parser(), argv)
    if args.quick:
        args.draws, args.labels, args.m2_epochs, args.epochs = 2, [100, 0], 2, 5
        args.m1m2_epochs = 20
    counts = [n for n in args.labels if 0 < n < len(d.x_train)] + (
        [0] if any(n == 0 or n >= len(d.x_train) for n in args.labels) else [])
    vae = None
    if {"M1", "M1+M2"} & set(args.methods):  # M1's VAE sees every image, no label: once
        vae = _common.model_from_args(args)
        npvae.train(vae, d.x_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    binarize="dynamic", rng=np.random.default_rng([args.seed, 6]),
                    verbose=False)
    results = {m: {n: [] for n in counts} for m in args.methods}
    for n in counts:
        for draw in range(args.draws if n else 1):  # all labels: nothing to draw
            for method, acc in run_draw(n, draw, d, vae, args).items():
                results[method][n].append(acc)
    print(f"\n{summary_table(results, counts, len(d.x_train))}\n"
          f"(mean ± sd over {args.draws} draws of the labelled images; all labels: 1 run; "
          f"{len(d.x_test):,} test images)")
    context = plots.run_label(args.dataset, None, args.latent)
    _common.save_figures({"semi_supervised": figure(results, counts, len(d.x_train), context)},
                         args.out)
    return results


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
