"""The constant c: how the decoder's variance weighs reconstruction against the KL.

    python demos/decoder_variance.py                       # Fashion-MNIST
    python demos/decoder_variance.py --dataset mnist       # the bundled MNIST split, offline

With a Gaussian decoder of fixed variance c = σ², the negative ELBO per example is

    ‖x − mean(z)‖² / (2c) + KL(q(z|x) ‖ N(0, I)) + (D/2) log 2πc,

so c sets the price of a squared pixel error in nats: a small c makes reconstruction dear and the
KL cheap (the codes carry much, samples are sharp but the latent space less regular); a large c
the reverse (blurry reconstructions, a code that says little). Multiplying the loss by c shows
that c is a KL weight in disguise: the gradient at σ and β = 1 is the gradient at σ = 1 and
β = c, divided by c (tests/test_decoder_variance.py checks it).

The demo trains the same VAE (784-400-20, grey pixels, no binarization) at each σ of --sigmas
(0.03 to 2 by default: pixels lie in [0, 1], so from σ ≈ 1 on a pixel's error costs little
against the KL) once per seed of --seeds, and prints, on the test set, mean ± sd over the seeds
of the squared error per image, the KL, and the c that would maximise the likelihood of that
model's reconstructions (the mean squared error per pixel). For scale it also prints the squared
error of decoding every image to the mean image, where the error goes as c grows and the code
carries nothing. A VAE with a learned per-pixel variance ("gaussian-learned") chooses c itself;
the mean of its variances is marked on the curve as the maximum-likelihood choice.

Below σ ≈ 0.3 the squared error barely moves while the KL falls several-fold; from σ ≈ 0.6 on
the error climbs towards the mean image's and the reconstructions visibly blur
(docs/story.md has the numbers and the measured time: about 2 minutes of CPU time;
``--seeds 0`` for a third of that).

    python demos/decoder_variance.py --sigmas 0.1 1 --seeds 0 --epochs 1   # quick

Writes decoder_variance.png (the curve) and decoder_variance_images.png (test images, then
reconstructions and prior samples at each σ) to --out.
"""

import argparse
import sys

import numpy as np

import _common
from npvae.run import plots
import matplotlib.pyplot as plt  # noqa: E402  (after plots has chosen the Agg backend)


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=5, n_train=10000,
                       out="figures/decoder_variance/{dataset}", dataset="fashion-mnist")
    p.add_argument("--sigmas", type=float, nargs="+",
                   default=[0.03, 0.1, 0.3, 0.6, 1.0, 2.0],
                   help="the decoder standard deviations σ to train with (c = σ²)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="train every σ once per seed (weights, batches, noise)")
    p.set_defaults(binarize="none")  # grey pixels: the Gaussian decoder models intensities
    return p


def measure(model, x_test, seed):
    """Squared error per image of decode(mu(x)), the mean KL, the ML c of the residuals, and
    images: 8 reconstructions and 8 prior samples."""
    mu, logvar = model.encode(x_test)  # (N, Z) each
    recon = model.decode(mu)  # (N, D)
    squared = ((x_test - recon) ** 2).sum(axis=1)  # (N,)
    kl = 0.5 * (mu * mu + np.expm1(logvar) - logvar).sum(axis=1)  # (N,)
    return {"squared_error": float(squared.mean()), "kl": float(kl.mean()),
            "c_ml": float(squared.mean() / x_test.shape[1]),
            "reconstructions": recon[:8],
            "samples": model.sample(8, rng=np.random.default_rng([seed, 7]))}


def learned_variance(model, x, seed):
    """The mean variance of a learned-variance decoder at z = mu(x), from the public API: a draw
    x ~ p(x|z) is mean + exp(logvar_x / 2)·noise, so E[(draw − mean)²] is the variance, and its
    mean over N·D pixels is estimated to a fraction of a percent."""
    mu, _ = model.encode(x)  # (N, Z)
    mean = model.decode(mu)  # (N, D)
    draw = model.decode(mu, draw=True, rng=np.random.default_rng([seed, 8]))  # (N, D)
    return float(((draw - mean) ** 2).mean())


def mean_sd(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def images_figure(x, results, context=""):
    """The test images, then for each σ their reconstructions (left) and prior samples (right),
    one row per σ; the figure's size follows the grid, so nothing is clipped or left blank."""
    with plots.style():
        return _images_figure(x, results, context)


def _images_figure(x, results, context):
    n = len(x)
    recon = [np.clip(x, 0, 1)] + [np.clip(r["reconstructions"], 0, 1) for r in results]
    samples = [np.ones_like(x)] + [np.clip(r["samples"], 0, 1) for r in results]
    rows = len(recon)
    fig, axes = plt.subplots(1, 2, figsize=(0.36 * 2 * n + 1.6, 0.36 * rows + 0.9))
    side = int(round(x.shape[1] ** 0.5)) + 1
    for ax, blocks, title in ((axes[0], recon, "reconstructions decode(mu(x))"),
                              (axes[1], samples, "prior samples decode(z), z ~ N(0, I)")):
        ax.imshow(plots.tile(np.concatenate(blocks), n), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title)
    axes[0].set_yticks([(i + 0.5) * side for i in range(rows)])
    axes[0].set_yticklabels(["test images"] + [f"σ = {r['sigma']:g}" for r in results])
    axes[0].tick_params(length=0)
    axes[1].set_yticks([])
    fig.suptitle("Larger σ: blurrier reconstructions, smoother samples"
                 + (f" — {context}" if context else ""))
    return fig


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    runs = {sigma: [] for sigma in args.sigmas}
    c_learned = []
    for seed in args.seeds:
        seed_args = argparse.Namespace(**{**vars(args), "seed": seed})
        for sigma in args.sigmas:
            print(f"--- seed {seed}, σ = {sigma:g}, c = {sigma**2:.4g}")
            model = _common.model_from_args(seed_args, likelihood="gaussian", sigma=sigma)
            _common.train(model, seed_args, x_train, x_val, np.random.default_rng([seed, 3]),
                          binarize=None)
            runs[sigma].append(measure(model, x_test, seed))
        print(f"--- seed {seed}, the learned per-pixel variance")
        learned = _common.model_from_args(seed_args, likelihood="gaussian-learned")
        _common.train(learned, seed_args, x_train, x_val, np.random.default_rng([seed, 3]),
                      binarize=None)
        c_learned.append(learned_variance(learned, x_test, seed))

    results = []
    for sigma, per_seed in runs.items():
        r = {"sigma": sigma, **per_seed[0]}  # the first seed's images
        for key in ("squared_error", "kl", "c_ml"):
            r[key], r[key + "_sd"] = mean_sd([m[key] for m in per_seed])
        results.append(r)
    c_mean, c_sd = mean_sd(c_learned)
    print(f"\nmean ± sd over {len(args.seeds)} seed{'s' if len(args.seeds) > 1 else ''}, on "
          f"{len(x_test):,} test images; ‖x − x̂‖² is per image, x̂ = decode(mu(x))")
    print(f"{'σ':>6s} {'c = σ²':>8s} {'‖x − x̂‖²':>16s} {'KL (nats)':>16s} {'ML c':>18s}")
    for r in results:
        print(f"{r['sigma']:6g} {r['sigma']**2:8.4g} "
              f"{r['squared_error']:8.2f} ± {r['squared_error_sd']:5.2f} "
              f"{r['kl']:8.2f} ± {r['kl_sd']:5.2f} {r['c_ml']:9.4f} ± {r['c_ml_sd']:6.4f}")
    total = float(((x_test - x_test.mean(axis=0)) ** 2).sum(axis=1).mean())
    print(f"for scale: decoding every image to the mean image gives ‖x − x̂‖² = {total:.2f}")
    print(f"the learned-variance decoder's mean variance: c = {c_mean:.4g} ± {c_sd:.2g}")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    _common.save_figures({
        "decoder_variance": plots.decoder_variance_curve(results, c_mean, context),
        "decoder_variance_images": images_figure(x_test[:8], results, context),
    }, args.out)
    return {"results": results, "per_seed": runs, "c_learned": c_mean,
            "mean_image_error": total}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
