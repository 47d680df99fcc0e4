"""Two estimators of log p(x) on the same trained model: sampling the prior, or the posterior.

    python demos/estimators.py                      # MNIST (the bundled split offline)

p(x) = E_{z ~ p(z)} p(x|z), so the obvious estimator draws z from the prior and averages
p(x|z). It is unbiased for p(x), but almost every z from the prior explains x badly, so the
average rests on a few lucky draws: its log is far too low unless k is astronomically large.
Drawing z from the encoder's q(z|x) instead and weighting by p(x|z) p(z) / q(z|x) (the IWAE
estimate) puts the samples where p(x|z) is large. The demo trains the standard VAE, then
estimates log p(x) of the same test images both ways for growing k, repeated with fresh
samples, and prints the mean and the spread over the repeats (``npvae.study.evaluate.log_likelihood``
with ``proposal="prior"`` or ``"posterior"``). Writes estimators.png to --out.
"""

import sys

import numpy as np

import _common
from npvae.study import evaluate
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, out="figures/estimators/{dataset}")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000, 5000],
                   help="samples per example")
    p.add_argument("--repeats", type=int, default=3, help="estimates per k, fresh samples each")
    p.add_argument("--n-images", type=int, default=50, help="test images")
    return p


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    model = _common.model_from_args(args)
    _common.train(model, args, x_train, x_val, rng)
    x = x_test[:args.n_images]
    results = {}
    for proposal, name in (("prior", "z ~ p(z)"), ("posterior", "z ~ q(z|x), IWAE")):
        means = np.array([[evaluate.log_likelihood(
            model, x, k=k, rng=np.random.default_rng([args.seed, 20, r, k]),
            proposal=proposal).mean() for r in range(args.repeats)] for k in args.ks])
        results[name] = means  # (len(ks), repeats): mean log p(x) over the images
        for k, row in zip(args.ks, means):
            print(f"{name:18s} k = {k:5d}: mean log p(x) {row.mean():9.2f} nats, spread over "
                  f"{args.repeats} repeats {np.ptp(row):.2f}")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    _common.save_figures({"estimators": plots.estimator_curves(args.ks, results, context)},
                         args.out)
    return results


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
