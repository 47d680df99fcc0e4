"""What every demo shares: its command-line flags, the data, and a clean exit on user errors.

Each demo builds its parser with ``parser(...)`` (choosing its own defaults), loads the data
with ``load(args)``, and is run through ``run(main_fn, argv)``, which turns an ``NpvaeError``
(missing data files, say) into a one-line message and exit code 2.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import npvae
from npvae.run import data
from npvae.run import plots
from npvae.core.vae import DEFAULT_HIDDEN_DIMS, DEFAULT_LATENT_DIM


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose --out default may name the data set: "figures/{dataset}"."""

    def parse_known_args(self, args=None, namespace=None):
        parsed, rest = super().parse_known_args(args, namespace)
        if isinstance(getattr(parsed, "out", None), str):
            parsed.out = parsed.out.format(dataset=parsed.dataset)
        return parsed, rest


def parser(description, *, epochs, out, n_train=None, n_test=None,
           hidden=DEFAULT_HIDDEN_DIMS, latent=DEFAULT_LATENT_DIM,
           dataset="mnist"):
    """An ArgumentParser with the flags every demo takes, defaulting to the given values
    (``hidden=None`` leaves out --hidden; ``{dataset}`` in ``out`` becomes --dataset)."""
    p = _Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=data.DATASETS, default=dataset,
                   help="which data set to train on")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the IDX files (None: $NPVAE_DATA_DIR, the user cache, "
                        "/usr/share/datasets, then a download)")
    p.add_argument("--epochs", type=int, default=epochs, help="training epochs")
    p.add_argument("--out", default=out, help="folder for the PNGs (created if needed; "
                                              "{dataset} stands for --dataset)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--n-train", type=int, default=n_train,
                   help="train on a random subset of this many examples (None: all)")
    p.add_argument("--n-test", type=int, default=n_test,
                   help="evaluate on a random subset of this many test examples (None: all)")
    p.add_argument("--test-split-only", action="store_true",
                   help="use only the test split (for machines that have only the MNIST test "
                        "files): train on 8,000 of its images and test on the other 2,000")
    p.add_argument("--no-fallback", action="store_true",
                   help="if the MNIST training images can be neither found nor downloaded, "
                        "stop with an error instead of using the test split bundled with npvae")
    if hidden is not None:
        p.add_argument("--hidden", type=int, nargs="*", default=list(hidden),
                       help="hidden layer sizes of the encoder (the decoder mirrors them)")
    p.add_argument("--latent", type=int, default=latent, help="latent size Z")
    p.add_argument("--batch-size", type=int, default=128, help="examples per Adam step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    return p


def _subset(x, y, n, rng):
    """A random subset of n examples (all of them if n is None or not smaller)."""
    if n is None or n >= len(x):
        return x, y
    if n < 1:
        raise npvae.NpvaeError(f"--n-train/--n-test must be positive, got {n}.")
    keep = np.sort(rng.choice(len(x), size=n, replace=False))
    return x[keep], y[keep]


def load(args, rng):
    """Load the train and test data that ``args`` ask for (see ``parser``): a
    ``npvae.run.data.RunData``. The rest of the demo's random choices are drawn from ``rng``."""
    source = "test-split" if args.test_split_only else "files"
    try:
        d = data.load_run_data(args.dataset, args.data_dir, source,
                               fallback=not args.no_fallback, seed=args.seed)
    except npvae.DataError as err:
        if args.test_split_only:
            raise
        other = "fashion-mnist" if args.dataset == "mnist" else "mnist"
        raise npvae.DataError(f"{err}\nOr run the demo on other data: --dataset {other}, or "
                              f"--test-split-only (train and test on the test split's "
                              f"files).") from err
    d.x_train, d.y_train = _subset(d.x_train, d.y_train, args.n_train, rng)
    d.x_test, d.y_test = _subset(d.x_test, d.y_test, args.n_test, rng)
    return d


def hold_out(d, seed, n_val=5000):
    """The training data less a validation set of n_val examples (capped at a tenth, at least
    1), drawn from ``seed``: (x_train, y_train, x_val, y_val)."""
    n_val = max(1, min(n_val, len(d.x_train) // 10))
    return data.train_val_split(d.x_train, d.y_train, n_val, np.random.default_rng([seed, 1]))


def split(d, seed, binarize="dynamic", n_val=5000):
    """Hold out a validation set, and binarize what a Bernoulli likelihood needs binarized.

    binarize : "dynamic" (the training and validation images stay grey: ``npvae.train`` draws
        the training pixels afresh each epoch and the validation pixels once), "static" (all
        binarized once here), or None (grey pixels throughout). The test set is binarized once,
        with its own seed, unless binarize is None, so every model is scored on the same bits.
    n_val : int, capped at a tenth of the training set (and at least 1).

    Returns
    -------
    x_train : (N - V, D), x_val : (V, D), x_test : (M, D).
    """
    x_train, _, x_val, _ = hold_out(d, seed, n_val)
    x_test = d.x_test
    if binarize == "static":
        x_train = data.binarize(x_train, np.random.default_rng([seed, 2]))
        x_val = data.binarize(x_val, np.random.default_rng([seed, 3]))
    if binarize is not None:
        x_test = data.binarize(x_test, np.random.default_rng([seed, 4]))
    return x_train, x_val, x_test


def model_from_args(args, input_dim=784, cls=npvae.VAE, **overrides):
    """The VAE (or subclass ``cls``) the flags describe: float32, Bernoulli unless overridden,
    initialised from --seed (so models built with the same flags start from the same weights)."""
    kwargs = dict(hidden_dims=tuple(args.hidden), latent_dim=args.latent, seed=args.seed)
    kwargs.update(overrides)
    return cls(input_dim, **kwargs)


def parse_and_load(parser, argv):
    """Parse the flags and load the data: (args, a Generator seeded by --seed, RunData)."""
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    d = load(args, rng)
    print(f"data: {d.description}")
    return args, rng, d


def start(parser, argv):
    """The start of a demo: parse the flags, load the data, hold out a validation set.

    Returns
    -------
    args : the parsed flags.
    rng : Generator seeded by --seed, for all the training randomness.
    d : npvae.run.data.RunData, the images and labels as loaded.
    (x_train, x_val, x_test) : as ``split`` makes them, binarized as the demo's --binarize
        flag says ("dynamic" if it has none; "none" for grey pixels).
    """
    args, rng, d = parse_and_load(parser, argv)
    binarize = getattr(args, "binarize", "dynamic")
    return args, rng, d, split(d, args.seed, None if binarize == "none" else binarize)


def train(model, args, x_train, x_val, rng, **kwargs):
    """``npvae.train`` with the flags' epochs, batch size and learning rate; the training
    pixels binarized afresh each epoch unless ``binarize`` says otherwise. Returns the history."""
    kwargs.setdefault("binarize", "dynamic")
    return npvae.train(model, x_train, epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, x_val=x_val, rng=rng, **kwargs)


def save_figures(figures, out):
    """Write each figure of ``{name: fig}`` to ``out/name.png``; print and return the paths."""
    paths = [plots.savefig(fig, Path(out) / f"{name}.png") for name, fig in figures.items()]
    for path in paths:
        print(f"wrote {path}")
    return paths


def run(main, argv=None):
    """Call ``main(argv)``; report a user error (``NpvaeError``) in one line and exit 2."""
    start = time.perf_counter()
    try:
        result = main(argv)
    except npvae.NpvaeError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return result
