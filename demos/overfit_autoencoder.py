"""An autoencoder with too much capacity: a 1-D code that memorises its training images.

    python demos/overfit_autoencoder.py            # 4,000 epochs: 93 s idle, 13 min loaded
    python demos/overfit_autoencoder.py --quick    # 400 epochs on 30 images, for a first look

With enough layers, an encoder could map N training images to the numbers 1, 2, ..., N and a
decoder map each number back to its image: zero reconstruction error, and nothing learned about
the images in between. This demo trains a large autoencoder (784-1024-512-1, Bernoulli decoder)
with a one-number code on 100 training images for 4,000 epochs (full batches, lr 3e-3), then decodes the codes
of the training images, the codes halfway between neighbouring training codes, and test images.

It prints the squared error of the training reconstructions, of the test reconstructions, and
the distance from each halfway decode to the nearest training image (pixel space), and draws
overfit_autoencoder.png: training images in code order, their reconstructions, the decodes
halfway between neighbours, and the codes themselves on the line, coloured by label.

What it measures is what gradient descent finds, which need not be the memorising solution the
argument imagines: the printed training and test errors, and the halfway decodes' distance to
the data, say how far training got towards it.
"""

import sys

import numpy as np

import _common
import npvae
from npvae.run import plots
from npvae.study import regularity


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=4000, n_train=100, n_test=300,
                       hidden=(1024, 512), latent=1, out="figures/overfit_autoencoder/{dataset}")
    p.set_defaults(lr=3e-3)
    p.add_argument("--quick", action="store_true",
                   help="a first look in a tenth of the time: 400 epochs on 30 training images "
                        "(--epochs and --n-train, if given, still win)")
    p.add_argument("--progress", type=int, default=10,
                   help="progress lines printed during training (0: none)")
    return p


def progress_hook(epochs, lines):
    """A training hook that prints the epoch and the training loss ``lines`` times in all."""
    every = max(1, epochs // max(lines, 1))

    def hook(epoch, record, model):
        if lines and (epoch % every == 0 or epoch == epochs):
            print(f"  epoch {epoch:5d}/{epochs}: training loss {record['loss']:.2f} nats "
                  f"per image", flush=True)
    return hook


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--quick" in argv:  # put first, so that --epochs or --n-train given as well still win
        argv = ["--epochs", "400", "--n-train", "30", *argv]
    args, rng, d = _common.parse_and_load(build_parser(), argv)
    model = _common.model_from_args(args, cls=npvae.Autoencoder)
    print(f"training a {model!r} on {len(d.x_train)} images for {args.epochs} epochs")
    npvae.train(model, d.x_train, epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, binarize=None, rng=rng, verbose=False,
                hooks=[progress_hook(args.epochs, args.progress)])
    code = model.encode(d.x_train)[:, 0]  # (N,)
    order = np.argsort(code)
    halfway = ((code[order][:-1] + code[order][1:]) / 2)[:, None].astype(model.dtype)  # (N-1, 1)
    between = model.decode(halfway)  # (N - 1, D)

    def squared(x):
        return float(((x - model.reconstruct(x)) ** 2).sum(axis=1).mean())

    result = {"train": squared(d.x_train), "test": squared(d.x_test),
              "halfway": float(regularity.nearest_distances(between, d.x_train).mean()),
              "train_to_own": float(np.linalg.norm(
                  d.x_train - model.reconstruct(d.x_train), axis=1).mean())}
    print(f"squared error per image: training {result['train']:.2f}, test {result['test']:.2f}")
    print(f"distance to the nearest training image: a training reconstruction "
          f"{result['train_to_own']:.2f}, a decode halfway between two training codes "
          f"{result['halfway']:.2f}")
    show = np.linspace(0, len(order) - 2, 12).astype(int)  # 12 places along the line
    context = plots.run_label(args.dataset, args.epochs, 1)
    _common.save_figures({"overfit_autoencoder": plots.overfit_codes(
        d.x_train[order][show], model.reconstruct(d.x_train[order][show]), between[show],
        code, d.y_train, context=context)}, args.out)
    return result


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
