"""Two estimators of log p(x) on the same trained model: sampling the prior, or the posterior.

    python demos/estimators.py                      # MNIST (the bundled split offline)

p(x) = E_{z ~ p(z)} p(x|z), so the obvious estimator draws z from the prior and averages
p(x|z). It is unbiased for p(x), but almost every z from the prior explains x badly, so the
average rests on a few lucky draws: its log is far too low unless k is astronomically large.
Drawing z from the encoder's q(z|x) instead and weighting by p(x|z) p(z) / q(z|x) (the IWAE
estimate) puts the samples where p(x|z) is large. The demo trains the standard VAE, then
estimates log p(x) of the same test images both ways for growing k, repeated with fresh
samples, and prints the mean and the spread over the repeats (``npvae.study.evaluate.log_likelihood``
with ``proposal="prior"`` or ``"posterior"``).

Then the gradient side, for the decoder's parameters θ: each estimator's gradient
∇θ log p̂(x) = Σ_k w̃_k ∇θ log p(x|z_k) on fewer images (--grad-images) and repeats
(--grad-repeats), its noise over the repeats and its bias against a reference gradient (the
IWAE gradient with the largest k), both as fractions of the reference's norm, with the bias an
unbiased estimator would show from the noise alone, its floor
(``npvae.study.estimator_gradients.gradient_noise_and_bias``). Writes estimators.png to --out.
"""

import sys
import time

import numpy as np

import _common
from npvae.study import estimator_gradients, evaluate
from npvae.run import plots


# Each proposal of log_likelihood, and the name the demo prints and plots it under.
ESTIMATORS = (("prior", "z ~ p(z)"), ("posterior", "z ~ q(z|x), IWAE"))


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, out="figures/estimators/{dataset}")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000, 5000],
                   help="samples per example")
    p.add_argument("--repeats", type=int, default=3, help="estimates per k, fresh samples each")
    p.add_argument("--n-images", type=int, default=50, help="test images")
    p.add_argument("--grad-images", type=int, default=5,
                   help="test images for the gradient's noise and bias (the first of them)")
    p.add_argument("--grad-repeats", type=int, default=2,
                   help="gradients per image and k, fresh samples each (at least 2)")
    return p


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    model = _common.model_from_args(args)
    _common.train(model, args, x_train, x_val, rng)
    x = x_test[:args.n_images]
    results = {}
    for proposal, name in ESTIMATORS:
        means = np.array([[evaluate.log_likelihood(
            model, x, k=k, rng=np.random.default_rng([args.seed, 20, r, k]),
            proposal=proposal).mean() for r in range(args.repeats)] for k in args.ks])
        results[name] = means  # (len(ks), repeats): mean log p(x) over the images
        for k, row in zip(args.ks, means):
            print(f"{name:18s} k = {k:5d}: mean log p(x) {row.mean():9.2f} nats, spread over "
                  f"{args.repeats} repeats {np.ptp(row):.2f}")
    gradients = gradient_side(model, x[:args.grad_images], args)
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    figure = plots.estimator_curves(args.ks, results, context, gradients=gradients)
    _common.save_figures({"estimators": figure}, args.out)
    results["gradients"] = gradients
    return results


def gradient_side(model, x, args):
    """The decoder gradient's noise, bias and bias floor for each estimator and k, printed;
    returned as {name: {"noise", "bias", "floor": (len(ks),)}} with the value side's names."""
    start = time.perf_counter()
    measured = estimator_gradients.gradient_noise_and_bias(
        model, x, args.ks, repeats=args.grad_repeats, rng=np.random.default_rng([args.seed, 21]))
    print(f"decoder gradient on {len(x)} images, {args.grad_repeats} repeats "
          f"({time.perf_counter() - start:.0f} s); as fractions of the norm of the IWAE "
          f"gradient at k = {max(args.ks)} (the reference); an unbiased estimator's bias is "
          f"about its floor:")
    gradients = {}
    for proposal, name in ESTIMATORS:
        gradients[name] = m = measured[proposal]
        for k, noise, bias, floor in zip(args.ks, m["noise"], m["bias"], m["floor"]):
            print(f"{name:18s} k = {k:5d}: gradient noise {noise:6.3f}, bias {bias:6.3f} "
                  f"(floor {floor:.3f})")
    return gradients

if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
