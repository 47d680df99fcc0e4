"""Simple conditionals compose into a complex p(x): a VAE fitted to a ring in the plane.

    python demos/toy_density.py                     # 46 s of CPU time (119 s on a loaded 2-core machine)

Every conditional p(x|z) of the VAE is one axis-aligned Gaussian, a blob; a Gaussian p(x) is a
single ellipse and cannot draw a ring. Yet p(x) = ∫ p(x|z) p(z) dz is an infinite mixture of
such blobs, one per z, and the decoder can place them along any curve. The data: 2-D points
on a ring of radius 2 with radial noise of std 0.1. The model: a 2-64-64-2 VAE (tanh) with
a Gaussian decoder that learns its own variance (``likelihood="gaussian-learned"``), trained
on 2,000 points, one model per seed.

It prints, on 1,000 held-out points and over the seeds (mean ± sd): the VAE's log p(x)
(importance-weighted, ``npvae.evaluate.log_likelihood``, k samples), the log-likelihood of the
best single Gaussian (fitted to the training points), and that of the true ring density,
which no model can beat on average; and the typical width of one conditional p(x|z) (the
decoder's std at z ~ p(z)) against the ring's radius. It draws toy_density.png: the data, the
learned log p(x) on a grid, the single Gaussian's, and twelve of the conditionals p(x|z)
(their 2σ ellipses) for z on the circle |z| = 1.2, where the prior's mass is. (z near the
prior's centre decodes to wider blobs inside the ring: the 2-D prior has little mass there, and
the model pays for it with the gap to the true density.)
"""

import sys

import numpy as np
from matplotlib.patches import Ellipse
import matplotlib.pyplot as plt
from scipy.stats import multivariate_normal

import _common
import npvae
from npvae.run import plots

RADIUS, WIDTH = 2.0, 0.1


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=150, hidden=(64, 64), latent=2,
                       out="figures/toy_density")
    p.set_defaults(batch_size=100, lr=3e-3)
    p.add_argument("--n", type=int, default=2000, help="training points on the ring")
    p.add_argument("--n-heldout", type=int, default=1000, help="held-out points")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one model per seed: the spread of every number")
    p.add_argument("--k", type=int, default=200, help="importance samples for log p(x)")
    p.add_argument("--grid", type=int, default=80, help="grid points per axis for the figure")
    return p


def ring(n, rng):
    """n points x = r (cos t, sin t), t ~ U(0, 2π), r ~ N(RADIUS, WIDTH²): (n, 2)."""
    t = rng.uniform(0, 2 * np.pi, n)
    r = RADIUS + WIDTH * rng.standard_normal(n)
    return np.c_[r * np.cos(t), r * np.sin(t)]


def ring_log_density(x):
    """The true log p(x) of ``ring`` in Cartesian coordinates: log N(|x|; R, w²) − log(2π|x|)
    (the polar-to-Cartesian Jacobian is 1/r; the mass at r < 0, ~1e-87, is ignored)."""
    r = np.linalg.norm(x, axis=1)
    return (-0.5 * ((r - RADIUS) / WIDTH) ** 2 - np.log(WIDTH * np.sqrt(2 * np.pi))
            - np.log(2 * np.pi * r))


def fit_one(args, seed):
    """Train one VAE on fresh ring data; return its numbers and what the figure needs."""
    rng = np.random.default_rng(seed)
    x_train, x_test = ring(args.n, rng), ring(args.n_heldout, rng)
    model = npvae.VAE(2, hidden_dims=tuple(args.hidden), latent_dim=args.latent,
                      likelihood="gaussian-learned", activation="tanh", dtype=np.float64,
                      seed=seed)
    history = npvae.train(model, x_train, epochs=args.epochs, batch_size=args.batch_size,
                          lr=args.lr, rng=np.random.default_rng([seed, 1]), verbose=False)
    log_p = npvae.evaluate.log_likelihood(model, x_test, k=args.k,
                                          rng=np.random.default_rng([seed, 2]))
    gaussian = multivariate_normal(x_train.mean(axis=0), np.cov(x_train.T))
    z = np.random.default_rng([seed, 3]).standard_normal((2000, args.latent))
    mean, logvar = model._decode_forward(z)[0]  # each (2000, 2): p(x|z) = N(mean, e^logvar)
    sd = np.exp(0.5 * logvar)  # each conditional's std per axis
    print(f"  seed {seed}: {len(history)} epochs, held-out log p(x): VAE {log_p.mean():.3f}, "
          f"single Gaussian {gaussian.logpdf(x_test).mean():.3f}, true ring "
          f"{ring_log_density(x_test).mean():.3f} nats")
    return {"vae": float(log_p.mean()), "gaussian": float(gaussian.logpdf(x_test).mean()),
            "true": float(ring_log_density(x_test).mean()), "cond_sd": float(np.median(sd)),
            "mean_radius": float(np.median(np.linalg.norm(mean, axis=1))),
            "model": model, "x_train": x_train, "gaussian_fit": gaussian}


def density_figure(fit, args, context):
    """Data | learned density | single Gaussian | conditionals p(x|z) along the prior."""
    model, x = fit["model"], fit["x_train"]
    u = np.linspace(-3, 3, args.grid)
    grid = np.array([[a, b] for b in u for a in u])  # (G², 2), row-major: y outer, x inner
    log_p = npvae.evaluate.log_likelihood(model, grid, k=args.k,
                                          rng=np.random.default_rng(7)).reshape(len(u), len(u))
    log_g = fit["gaussian_fit"].logpdf(grid).reshape(len(u), len(u))
    with plots.style():
        fig, axes = plt.subplots(1, 4, figsize=(14, 3.9))
        axes[0].scatter(x[:, 0], x[:, 1], s=2, alpha=0.4)
        axes[0].set_title("training data (2,000 points)")
        for ax, log_dens, title in ((axes[1], log_p, "VAE: log p(x), p = ∫ p(x|z) p(z) dz"),
                                    (axes[2], log_g, "best single Gaussian: log p(x)")):
            im = ax.imshow(np.clip(log_dens, -8, None), origin="lower", extent=[-3, 3, -3, 3],
                           cmap="viridis", vmin=-8, vmax=1)
            ax.set_title(title)
            ax.grid(False)
        fig.colorbar(im, ax=axes[1:3], label="log density (nats, cut at −8)", shrink=0.85)
        # A few conditionals: z on the circle |z| = 1.2 (where a 2-D N(0, I) has most mass).
        angle = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        z = np.zeros((12, model.latent_dim))
        z[:, 0], z[:, 1] = 1.2 * np.cos(angle), 1.2 * np.sin(angle)
        mean, logvar = model._decode_forward(z)[0]  # each (12, 2)
        sd = np.exp(0.5 * logvar)
        axes[3].scatter(x[:, 0], x[:, 1], s=1, alpha=0.15, color="grey", label="data")
        colours = plt.cm.hsv(angle / (2 * np.pi))
        for j in range(len(z)):
            axes[3].add_patch(Ellipse(mean[j], 4 * sd[j, 0], 4 * sd[j, 1], fill=False,
                                      color=colours[j], lw=1.5))
        axes[3].scatter(mean[:, 0], mean[:, 1], c=colours, s=12,
                        label="mean of p(x|z), |z| = 1.2")
        axes[3].set_title("single conditionals p(x|z) (2σ)")
        axes[3].legend(loc="center", fontsize=7)
        for ax in axes:
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_aspect("equal")
            ax.set_xlabel("x₁")
            ax.set_ylabel("x₂")
        fig.suptitle(plots._title("A ring from Gaussian blobs", context))
    return fig


def main(argv=None):
    args = build_parser().parse_args(argv)
    print(f"ring of radius {RADIUS}, radial std {WIDTH}; {args.n} training and "
          f"{args.n_heldout} held-out points; seeds {args.seeds}")
    fits = [fit_one(args, seed) for seed in args.seeds]

    def summary(key):
        values = np.array([f[key] for f in fits])
        return float(values.mean()), float(values.std(ddof=1) if len(values) > 1 else 0.0)

    result = {key: summary(key) for key in ("vae", "gaussian", "true", "cond_sd",
                                            "mean_radius")}
    for f in fits:
        f["gain"] = f["vae"] - f["gaussian"]
    result["gain"] = summary("gain")
    n = len(fits)
    print(f"held-out log p(x), nats per point, mean ± sd over {n} seeds:")
    print(f"  VAE (IWAE, k = {args.k})  {result['vae'][0]:.3f} ± {result['vae'][1]:.3f}")
    print(f"  single Gaussian        {result['gaussian'][0]:.3f} ± {result['gaussian'][1]:.3f}")
    print(f"  true ring density      {result['true'][0]:.3f} ± {result['true'][1]:.3f}")
    print(f"  the VAE's gain over one Gaussian: {result['gain'][0]:.3f} ± {result['gain'][1]:.3f}"
          f" nats; its shortfall from the truth: "
          f"{result['true'][0] - result['vae'][0]:.3f} nats")
    print(f"one conditional p(x|z) is narrow: median std {result['cond_sd'][0]:.3f} ± "
          f"{result['cond_sd'][1]:.3f} per axis, against a ring of radius {RADIUS} (its means "
          f"sit at median radius {result['mean_radius'][0]:.2f})")
    context = f"{args.epochs} epochs · Z = {args.latent} · seed {args.seeds[0]}"
    _common.save_figures({"toy_density": density_figure(fits[0], args, context)}, args.out)
    for f in fits:
        del f["model"], f["x_train"], f["gaussian_fit"]
    result["per_seed"] = fits
    return result


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
