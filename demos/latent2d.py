"""A VAE with a 2-D latent space: where the test images land, and what every point decodes to.

    python demos/latent2d.py --dataset fashion-mnist

With latent_dim = 2 the whole latent space fits on a page. It writes to --out:
    latent_scatter.png   the posterior means mu(x) of the test images, coloured by label
    manifold.png         decoded means on a 16 × 16 grid of z, spaced by the inverse normal CDF
                         so that each cell holds an equal share of the prior's mass (as in
                         Kingma & Welling 2014, figure 4)
    checkpoint.npz       the trained model (``npvae plot`` redraws both figures from it)
and prints the test ELBO. A 2-D code is a tight bottleneck, so the ELBO is worse than with
Z = 20, but the classes still arrange themselves into regions the prior covers.
"""

import sys

import numpy as np

import _common
from npvae.study import evaluate
from npvae.run import plots


def build_parser():
    return _common.parser(__doc__.splitlines()[0], epochs=50, latent=2,
                          out="figures/latent2d/{dataset}")


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    model = _common.model_from_args(args)
    # out_dir: a checkpoint after every epoch; extra: what `npvae plot` needs to redraw.
    history = _common.train(model, args, x_train, x_val, rng, out_dir=args.out,
                            extra={"dataset": args.dataset, "data_dir": args.data_dir,
                                   "binarize": "dynamic", "demo": "latent2d.py"})
    result = evaluate.elbo(model, x_test, rng=np.random.default_rng([args.seed, 5]))
    print(f"test ELBO {result['elbo']:.2f} nats (recon {result['recon']:.2f}, "
          f"KL {result['kl']:.2f})")

    context = plots.run_label(args.dataset, args.epochs, model.latent_dim)
    mu, _ = model.encode(d.x_test)  # (N, 2): the grey test images, as in the other figures
    _common.save_figures({
        "latent_scatter": plots.latent_scatter(mu, d.y_test, args.dataset, context),
        "manifold": plots.manifold(model, context=context),
    }, args.out)
    return {"history": history, "test": result}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
