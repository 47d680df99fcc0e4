"""A conditional VAE: draw any class on demand, and move an image's style to another class.

    python demos/cvae.py --dataset fashion-mnist
    python demos/cvae.py --dataset mnist --test-split-only    # with only MNIST's test files

The CVAE (Sohn et al. 2015; npvae.CVAE) joins a one-hot label y to the encoder's input and to
the decoder's input: q(z|x, y) and p(x|z, y), with the prior p(z) = N(0, I) for every class.
Since the decoder is told the class, the code z is free to hold what the label does not say:
the style (thickness, slant, width, shade). It is not forced to, though: an encoder that also
sees x can keep the class in z too, and then the decoder learns to ignore y. A small code
(the default Z = 2) leaves no room for that, so the label does the work. Hence the two figures:

    cvae_classes.png         z ~ N(0, I), decoded with each label: one class per row, and in each
                             column the same z, so a column keeps its style across classes
    cvae_style_transfer.png  a test image x of class y, encoded with its own label,
                             mu(x, y), then decoded with every label c: decode(mu(x, y), c)

It trains through ``npvae.train(model, x, y=labels, ...)``, the loop every VAE trains with; the
training pixels are binarized afresh each epoch (dynamic binarization), and it prints the
test -ELBO of p(x|y) on a statically binarized test set.
"""

import sys

import numpy as np

import _common
from npvae.run import data
from npvae.study import evaluate
from npvae.run import plots
from npvae.models.cvae import CVAE


def build_parser():
    return _common.parser(__doc__.splitlines()[0], epochs=5, latent=2,
                          out="figures/cvae/{dataset}")


def class_rows(model, names, ncols, rng, context):
    """Row c: decode(z_j, c) for the same n draws z_j ~ N(0, I) in every row."""
    C = len(names)
    z = rng.standard_normal((ncols, model.latent_dim), dtype=model.dtype)  # (n, Z)
    images = model.decode(np.tile(z, (C, 1)), np.repeat(np.arange(C), ncols))  # (C·n, D)
    fig = plots.image_grid(images, ncols=ncols, title="CVAE samples: one class per row,\n"
                           "the same z in each column", context=context)
    _label_cells(fig.axes[0], rows=names, xlabel="z ~ N(0, I), the same in each column",
                 ylabel="label y")
    return fig


def style_transfer(model, x, y, names, context):
    """Row i: x_i, then decode(mu(x_i, y_i), c) for every class c."""
    C, n = len(names), len(x)
    mu, _ = model.encode(x, y)  # (n, Z)
    decoded = model.decode(np.repeat(mu, C, axis=0), np.tile(np.arange(C), n))  # (n·C, D)
    rows = np.concatenate([x[:, None], decoded.reshape(n, C, -1)], axis=1)  # (n, 1 + C, D)
    fig = plots.image_grid(rows.reshape(n * (C + 1), -1), ncols=C + 1,
                           title="CVAE style transfer: x encoded with its own label,\n"
                                 "decoded with each label", context=context)
    _label_cells(fig.axes[0], rows=[names[c] for c in y], cols=["input", *names],
                 xlabel="decoded with label", ylabel="input (its label)")
    return fig


def _label_cells(ax, rows=None, cols=None, xlabel="", ylabel="", side=28):
    """Name the rows and columns of a grid drawn by plots.image_grid (cells side + 1 apart)."""
    centres = lambda n: np.arange(n) * (side + 1) + side / 2  # noqa: E731
    if rows is not None:
        ax.set_yticks(centres(len(rows)), rows)
    if cols is not None:
        ax.set_xticks(centres(len(cols)), cols, rotation=45, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def main(argv=None):
    args, rng, d = _common.parse_and_load(build_parser(), argv)
    names = plots.CLASS_NAMES[args.dataset]
    model = CVAE(d.x_train.shape[1], len(names), hidden_dims=tuple(args.hidden),
                 latent_dim=args.latent, seed=args.seed)
    x_train, y_train, x_val, y_val = _common.hold_out(d, args.seed)
    # The same loop as a VAE's: npvae.train, with the labels passed as y (and y_val).
    _common.train(model, args, x_train, x_val, rng, y=y_train, y_val=y_val)

    x_test = data.binarize(d.x_test, np.random.default_rng([args.seed, 3]))
    test = evaluate.elbo(model, x_test, y=d.y_test, rng=np.random.default_rng([args.seed, 5]))
    loss = -test["elbo"]
    print(f"test -ELBO of p(x|y)  {loss:.2f} nats  (recon {test['recon']:.2f}, "
          f"KL {test['kl']:.2f}; {len(x_test):,} examples)")

    context = plots.run_label(args.dataset, args.epochs, args.latent)
    # One test image of each class (the first of each that the test set holds), in class order.
    classes, first = np.unique(d.y_test, return_index=True)
    figures = {
        "cvae_classes": class_rows(model, names, 10, np.random.default_rng([args.seed, 7]),
                                   context),
        "cvae_style_transfer": style_transfer(model, d.x_test[first], classes, names, context),
    }
    out = {}
    for name, fig in figures.items():
        out[name] = plots.savefig(fig, f"{args.out}/{name}.png")
        print(f"wrote {out[name]}")
    return {"test_loss": loss, "figures": out}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
