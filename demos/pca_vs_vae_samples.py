"""PCA cannot invent, a VAE can: samples of probabilistic PCA beside the VAE's, on MNIST.

    python demos/pca_vs_vae_samples.py              # 3 seeds x 20 epochs; idle time untimed (slow at load 11)

Probabilistic PCA is a generative model too: z ~ N(0, I_Z), x = W z + mean + noise, with the
noise N(0, σ² I) (``npvae.ppca.fit_ppca``, the maximum-likelihood fit, Tipping & Bishop 1999).
Its samples are sums of Z fixed eigen-images with Gaussian weights: a linear map can only mix
the directions of the data, so a sample is a ghostly overlay of strokes, with negative ink
where one eigen-image cancels another. The VAE (784-400-Z, Bernoulli decoder, the same Z)
decodes z through a non-linear map onto curved pieces of the data.

The judge is independent of both models and uses no classifier: for each sample, the
Euclidean distance to its nearest training image, as an excess over the same distance for
held-out test images (real digits that neither model saw); and the share of pixels that are
clearly ink or background (below 0.1 or above 0.9; the test digits' share is printed beside
it). Samples are compared like with like: PPCA's mean W z + mean and the VAE's decoder mean
(pixel probabilities), and also PPCA's full samples, noise included. One VAE per seed (and
PPCA's draws from the same seed), mean ± sd over the seeds. Writes pca_vs_vae_samples.png:
test digits, PPCA samples with and without the noise, and the VAE's samples.
"""

import sys

import numpy as np

import _common
from npvae.run import plots
from npvae.study import ppca, regularity


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=20, hidden=(400,), latent=20,
                       out="figures/pca_vs_vae_samples/{dataset}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one VAE (and one set of PPCA draws) per seed")
    p.add_argument("--n-samples", type=int, default=500, help="samples judged per model")
    return p


def judge(samples, x_train):
    """(mean distance to the nearest training image, share of pixels < 0.1 or > 0.9)."""
    dist = regularity.nearest_distances(samples.astype(np.float32), x_train)
    return float(dist.mean()), float(((samples < 0.1) | (samples > 0.9)).mean())


def main(argv=None):
    args, _, d = _common.parse_and_load(build_parser(), argv)
    x_grey = d.x_train  # (N, D): PPCA is fitted to, and everything judged against, grey pixels
    mean, W, sigma2 = ppca.fit_ppca(x_grey.astype(np.float64), args.latent)
    n = min(args.n_samples, len(d.x_test))
    test = d.x_test[:n]
    test_dist, test_sharp = judge(test, x_grey)
    print(f"PPCA, Z = {args.latent}: noise σ² = {sigma2:.4f} per pixel; test digits: distance "
          f"to the nearest training image {test_dist:.2f}, ink-or-background share "
          f"{test_sharp:.3f}")
    names = ("PPCA, W z + mean", "PPCA, with its noise", "VAE, decoder mean")
    per_seed = {name: [] for name in names}
    shown = {}
    for seed in args.seeds:
        args.seed = seed
        rng = np.random.default_rng(seed)
        x_train, x_val, _ = _common.split(d, seed)
        model = _common.model_from_args(args)
        _common.train(model, args, x_train, x_val, rng, verbose=False)
        draw = np.random.default_rng([seed, 9])
        z = draw.standard_normal((n, args.latent))  # (n, Z)
        ppca_mean = z @ W.T + mean  # (n, D)
        samples = {names[0]: ppca_mean,
                   names[1]: ppca_mean + np.sqrt(sigma2) * draw.standard_normal(ppca_mean.shape),
                   names[2]: model.sample(n, rng=np.random.default_rng([seed, 10]))}
        for name, s in samples.items():
            dist, sharp = judge(s, x_grey)
            per_seed[name].append({"excess": dist - test_dist, "sharp": sharp})
        print(f"  seed {seed}: excess distance " + ", ".join(
            f"{name} {per_seed[name][-1]['excess']:.3f}" for name in names))
        if not shown:
            shown = {"test digits": test[:36], **{k: v[:36] for k, v in samples.items()}}

    def stat(name, key):
        v = np.array([m[key] for m in per_seed[name]])
        return float(v.mean()), float(v.std(ddof=1) if len(v) > 1 else 0.0)

    summary = {name: {key: stat(name, key) for key in ("excess", "sharp")} for name in names}
    print(f"mean ± sd over {len(args.seeds)} seeds, {n} samples each:")
    print(f"  {'':22s} {'distance to data − test digits':>32s} {'ink-or-background share':>25s}")
    for name in names:
        e, s = summary[name]["excess"], summary[name]["sharp"]
        print(f"  {name:22s} {e[0]:25.3f} ± {e[1]:.3f} {s[0]:19.3f} ± {s[1]:.3f}")
    print(f"  {'test digits':22s} {0:25.3f} {'':7s} {test_sharp:19.3f}")
    ratio = summary[names[0]]["excess"][0] / max(summary[names[2]]["excess"][0], 1e-9)
    print(f"PPCA's means sit {ratio:.1f} times as far beyond the test digits' distance to the "
          f"training set as the VAE's")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    _common.save_figures({"pca_vs_vae_samples": sample_panels(shown, context)}, args.out)
    return {"summary": summary, "per_seed": per_seed, "test_sharp": test_sharp,
            "sigma2": sigma2}


def sample_panels(panels, context):
    """One 6 × 6 grid per entry of {title: (36, D) images}, PPCA's clipped to [0, 1] to show."""
    import matplotlib.pyplot as plt

    with plots.style():
        fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.8))
        for ax, (title, images) in zip(axes, panels.items()):
            canvas = plots.tile(np.clip(images, 0, 1), 6)
            ax.imshow(canvas, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(title + (" (clipped)" if title.startswith("PPCA") else ""))
        fig.suptitle(plots._title("Probabilistic PCA cannot invent digits; a VAE can", context))
    return fig


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
