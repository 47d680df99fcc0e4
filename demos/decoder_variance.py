"""The constant c: how the decoder's variance weighs reconstruction against the KL.

    python demos/decoder_variance.py --dataset fashion-mnist

With a Gaussian decoder of fixed variance c = σ², the negative ELBO per example is

    ‖x − mean(z)‖² / (2c) + KL(q(z|x) ‖ N(0, I)) + (D/2) log 2πc,

so c sets the price of a squared pixel error in nats: a small c makes reconstruction dear and the
KL cheap (the codes carry much, samples are sharp but the latent space less regular); a large c
the reverse (blurry reconstructions, a code that says little). Multiplying the loss by c shows
that c is a KL weight in disguise: the gradient at σ and β = 1 is the gradient at σ = 1 and
β = c, divided by c (tests/test_decoder_variance.py checks it).

The demo trains the same VAE (784-400-20, grey pixels, no binarization) at each σ of --sigmas
(a decade by default) and prints, on the test set, the squared error per image, the KL, and the
c that would maximise the likelihood of that model's reconstructions (the mean squared error per
pixel). A VAE with a learned per-pixel variance ("gaussian-learned") chooses c itself; the mean
of its variances is marked on the curve as the maximum-likelihood choice.

Writes decoder_variance.png (the curve) and decoder_variance_images.png (reconstructions and
prior samples at each σ) to --out.
"""

import sys

import numpy as np

import _common
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=5, n_train=20000,
                       out="figures/decoder_variance/{dataset}", dataset="fashion-mnist")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.03, 0.06, 0.1, 0.2, 0.3],
                   help="the decoder standard deviations σ to train with (c = σ²)")
    p.set_defaults(binarize="none")  # grey pixels: the Gaussian decoder models intensities
    return p


def measure(model, x_test, seed):
    """Squared error per image of decode(mu(x)), the mean KL, the ML c of the residuals, and
    images: 10 reconstructions and 10 prior samples."""
    mu, logvar = model.encode(x_test)
    recon = model.decode(mu)  # (N, D)
    squared = ((x_test - recon) ** 2).sum(axis=1)  # (N,)
    kl = 0.5 * (mu * mu + np.expm1(logvar) - logvar).sum(axis=1)  # (N,)
    return {"squared_error": float(squared.mean()), "kl": float(kl.mean()),
            "c_ml": float(squared.mean() / x_test.shape[1]),
            "reconstructions": recon[:10],
            "samples": model.sample(10, rng=np.random.default_rng([seed, 7]))}


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    results = []
    for sigma in args.sigmas:
        print(f"--- sigma = {sigma:g}, c = {sigma**2:.4g}")
        model = _common.model_from_args(args, likelihood="gaussian", sigma=sigma)
        _common.train(model, args, x_train, x_val, rng, binarize=None)
        results.append({"sigma": sigma, **measure(model, x_test, args.seed)})
    print("--- the learned per-pixel variance")
    learned = _common.model_from_args(args, likelihood="gaussian-learned")
    _common.train(learned, args, x_train, x_val, rng, binarize=None)
    heads, _ = learned._decode_forward(learned.encode(x_test)[0], None)
    c_learned = float(np.exp(heads[1]).mean())  # the mean of its variances e^logvar_x

    print(f"\n{'σ':>6s} {'c = σ²':>8s} {'‖x − x̂‖²':>10s} {'KL':>8s} {'ML c':>9s}   (test, per "
          f"image)")
    for r in results:
        print(f"{r['sigma']:6g} {r['sigma']**2:8.4g} {r['squared_error']:10.2f} {r['kl']:8.2f} "
              f"{r['c_ml']:9.4g}")
    print(f"the learned-variance decoder's mean variance: c = {c_learned:.4g}")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    _common.save_figures({
        "decoder_variance": plots.decoder_variance_curve(results, c_learned, context),
        "decoder_variance_images": plots.decoder_variance_images(results, context),
    }, args.out)
    return {"results": results, "c_learned": c_learned}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
