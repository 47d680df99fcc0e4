"""Regularity: an autoencoder's latent space against a VAE's, in pictures and in numbers.

    python demos/regularity.py                          # MNIST (the bundled split offline)
    python demos/regularity.py --dataset fashion-mnist
    python demos/regularity.py --seeds 0 --collapse-steps 300   # one seed, quick

Two models with the same layers (784-400-2, Bernoulli decoder), the same initial weights of
every layer they share, the same data and the same batches: a plain autoencoder
(``npvae.Autoencoder``, reconstruction only) and a VAE (reconstruction and KL). Both are trained
once per seed of --seeds (the seed sets the weights, the batches and the prior draws), and every
number is printed per seed and as mean ± standard deviation over the seeds, with the gap between
the two models in units of the larger of their spreads (a gap of a few spreads or more is a
difference the seeds cannot explain).

The numbers (``npvae.study.regularity``), all on the test images:

- where the codes sit against the prior the model is sampled from: the largest |z|, the fraction
  of codes beyond |z| = 3 (the prior's own fraction is 1.1 % in 2-D), and the KL from the
  Gaussian with the codes' mean and covariance to N(0, I);
- what the prior's draws decode to (completeness): the mean distance from 1,000 decoded draws
  z ~ N(0, I) to the nearest training image; the fraction of draws as close to the data as the
  model's median reconstruction is; and how many classes the draws reach (the labels of their
  nearest training images, as exp(entropy): 10 if all ten classes come out evenly);
- inside the model's own region of codes: the mean distance from a decoded grid over the box
  the codes occupy to the nearest training image, and the unevenness of straight paths between
  codes (the largest pixel change of a step over the mean step; 1 is an even path).

What they show, on MNIST (3 seeds; docs/story.md has the run): the autoencoder's failure
is that its codes have nothing to do with the prior. 93 % of them lie beyond |z| = 3 (the VAE:
17 %), reaching |z| ≈ 35, and the moment-matched KL is 80 nats against 0.6, so draws from N(0, I)
land in a small corner of its code region: they decode to about 3.4 classes (the VAE's: 7.2) and
rarely come as close to the data as a reconstruction (5 % of draws, against 34 %). Its straight
paths are also less even (1.70 against 1.46). But the source texts' picture of an autoencoder
whose latent space is full of holes that decode to nonsense is not what happens here: over its
own box of codes its decoded grid is as close to the data as the VAE's (3.95 ± 0.21 against
4.16 ± 0.16 pixels), and the halfway points of its paths are blends of digits, not noise. In 2-D
with 8,000 images, the holes are not there; what is missing is any link to the prior.

A second run shows why the KL is needed even with the noise kept: a VAE trained with β = 0
shrinks its encoder's σ towards 0, so that q(z|x) becomes a point and the VAE an autoencoder.

Writes regularity.png (the first seed's models, four views each) and sigma_collapse.png to
--out. The default run takes about 140 s of CPU time (docs/story.md); ``--seeds 0
--collapse-steps 300`` about a quarter of that.
"""

import argparse
import sys

import numpy as np

import _common
import npvae
from npvae.run import data
from npvae.run import plots
from npvae.study import regularity
from npvae.core.batching import minibatches
from npvae.run.training import train_step

# (key, column header, format) of every number the demo prints, per seed and summarised.
MEASURES = [
    ("max_code", "max |z|", "{:.1f}"),
    ("outside_3", "|z| > 3", "{:.3f}"),
    ("kl_codes", "KL codes", "{:.2f}"),
    ("recon", "reconstr.", "{:.2f}"),
    ("prior", "prior dist.", "{:.2f}"),
    ("near", "near data", "{:.3f}"),
    ("classes", "classes", "{:.2f}"),
    ("grid", "grid dist.", "{:.2f}"),
    ("unevenness", "unevenness", "{:.2f}"),
]
LEGEND = """  max |z|      the largest |code| of a test image (the prior's draws rarely exceed 3.5)
  |z| > 3      fraction of test codes beyond |z| = 3 (the prior's own: {prior_out:.3f})
  KL codes     KL(N(mean, cov of the codes) ‖ N(0, I)), nats (0: the codes look like prior draws)
  reconstr.    mean distance from a reconstruction to the nearest training image, pixels
  prior dist.  mean distance from a decoded z ~ N(0, I) to the nearest training image, pixels
  near data    fraction of decoded z ~ N(0, I) closer to the data than the median reconstruction
  classes      classes the decoded z ~ N(0, I) reach, exp(entropy of their nearest images' labels)
  grid dist.   mean distance from the decoded grid over the codes' own box to the data, pixels
  unevenness   largest step over mean step of straight paths between test codes (1: even)"""


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, latent=2,
                       out="figures/regularity/{dataset}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="train the two models once per seed (weights, batches, prior draws)")
    p.add_argument("--n-prior", type=int, default=1000, help="decoded draws z ~ N(0, I)")
    p.add_argument("--collapse-steps", type=int, default=2000,
                   help="training steps of the β = 0 and β = 1 runs whose σ is tracked")
    return p


def build_models(args, input_dim=784):
    """The autoencoder and the VAE, with equal initial weights in every layer they share (the
    encoder trunk, the code head = the mean head, the decoder)."""
    ae = _common.model_from_args(args, input_dim, cls=npvae.Autoencoder)
    vae = _common.model_from_args(args, input_dim)
    for name, value in ae.params.items():
        vae.params[name.replace("code.", "mu.")][...] = value
    return ae, vae


def sigma_curve(args, x_train, beta):
    """Mean σ of q(z|x) on a fixed batch, every 10 steps of training with this β: (steps,
    sigmas)."""
    model = _common.model_from_args(args, x_train.shape[1])
    opt = npvae.Adam(model.params, lr=args.lr)
    rng = np.random.default_rng([args.seed, 9])
    probe = x_train[:500]
    steps, sigmas, step = [], [], 0
    for epoch in range(args.collapse_steps):
        for _, index in minibatches(len(x_train), args.batch_size, seed=args.seed, epoch=epoch):
            if step % 10 == 0:
                steps.append(step)
                sigmas.append(float(np.exp(0.5 * model.encode(probe)[1]).mean()))
            train_step(model, opt, data.binarize(x_train[index], rng), beta=beta, rng=rng)
            step += 1
            if step > args.collapse_steps:
                return np.array(steps), np.array(sigmas)
    return np.array(steps), np.array(sigmas)


def measure(model, reference, labels, x_test, x_a, x_b, seed, n_prior=1000):
    """Every number of ``MEASURES`` for one trained model: a dict.

    reference, labels : the grey training images (M, D) and their labels (M,), what "near the
    data" is measured against. x_test : (N, D) the images whose codes and reconstructions are
    measured. x_a, x_b : (P, D) the ends of the straight paths."""
    z = regularity.codes(model, x_test)  # (N, Z)
    recon = regularity.nearest_distances(model.reconstruct(x_test[:500]), reference)  # (500,)
    draws = model.sample(n_prior, rng=np.random.default_rng([seed, 10]))  # (n, D)
    prior, nearest = regularity.nearest(draws, reference)  # (n,), (n,)
    return {
        "max_code": float(np.abs(z).max()),
        "outside_3": regularity.outside_ball(z, 3.0),
        "kl_codes": regularity.moment_matched_kl(z),
        "recon": float(recon.mean()),
        "prior": float(prior.mean()),
        "near": regularity.near_data_fraction(prior, recon),
        "classes": regularity.effective_classes(np.asarray(labels)[nearest]),
        "grid": float(regularity.grid_distances(model, z, reference).mean()),
        "unevenness": regularity.unevenness(regularity.interpolation_steps(model, x_a, x_b)),
    }


def _row(name, values):
    return f"{name:18s}" + "".join(f"{fmt.format(values[k]):>12s}" for k, _, fmt in MEASURES)


def summarise(per_seed):
    """Mean, standard deviation (ddof = 1; 0 for one seed) and the gap between the models in
    units of the larger spread, per measure: {"autoencoder": {key: (mean, sd)}, ..., "gap":
    {key: gap}}."""
    out = {}
    for name, runs in per_seed.items():
        out[name] = {}
        for key, _, _ in MEASURES:
            values = np.array([r[key] for r in runs])
            out[name][key] = (float(values.mean()),
                              float(values.std(ddof=1)) if len(values) > 1 else 0.0)
    (ae, vae) = (out["autoencoder"], out["VAE"])
    out["gap"] = {key: abs(ae[key][0] - vae[key][0]) / max(ae[key][1], vae[key][1], 1e-12)
                  for key, _, _ in MEASURES}
    return out


def print_summary(per_seed, summary):
    seeds = len(next(iter(per_seed.values())))
    print(f"\nmean ± sd over {seeds} seed{'s' if seeds > 1 else ''}; gap = |difference of the "
          f"means| / the larger sd")
    print(f"{'':14s}{'autoencoder':>18s}{'VAE':>18s}{'gap':>10s}")
    for key, header, fmt in MEASURES:
        cells = [f"{fmt.format(m)} ± {fmt.format(s)}" for m, s in
                 (summary["autoencoder"][key], summary["VAE"][key])]
        gap = summary["gap"][key]
        print(f"{header:14s}{cells[0]:>18s}{cells[1]:>18s}{gap:10.1f}")


def add_legend(fig, results):
    """The class colours and the prior's circles as one legend under the figure, and each
    scatter's fraction of codes beyond |z| = 3 in its title."""
    with plots.style():
        handles, labels = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), markerscale=5,
                   title="colour: the test image's label; dashed: circles of the prior N(0, I)")
        for ax, (name, r) in zip(fig.axes[::4], results.items()):
            ax.set_title(f"{name}: test codes ({r['outside_3']:.0%} beyond |z| = 3)")
    return fig


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    pairs = np.random.default_rng([args.seed, 11]).permutation(len(x_test))[:40]
    x_a, x_b = x_test[pairs[:20]], x_test[pairs[20:]]
    reference, labels = d.x_train, d.y_train  # grey training images: the decoded means are grey
    per_seed = {"autoencoder": [], "VAE": []}
    first = None
    header = f"{'seed  model':18s}" + "".join(f"{h:>12s}" for _, h, _ in MEASURES)
    for seed in args.seeds:
        seed_args = argparse.Namespace(**{**vars(args), "seed": seed})
        ae, vae = build_models(seed_args)
        for model in (ae, vae):  # the same batches and pixels: the same seed for each
            _common.train(model, seed_args, x_train, None, np.random.default_rng([seed, 3]))
        if first is None:
            first = {"autoencoder": ae, "VAE": vae}
            print("\n" + header)
        for name, model in (("autoencoder", ae), ("VAE", vae)):
            result = measure(model, reference, labels, x_test, x_a, x_b, seed, args.n_prior)
            per_seed[name].append(result)
            print(_row(f"{seed:<4d}  {name}", result))
    print(LEGEND.format(prior_out=regularity.prior_outside_ball(args.latent)))
    summary = summarise(per_seed)
    print_summary(per_seed, summary)

    curves = {f"β = {beta:g}": sigma_curve(args, x_train, beta) for beta in (0.0, 1.0)}
    for label, (steps, sigmas) in curves.items():
        print(f"{label}: mean σ of q(z|x) {sigmas[0]:.3f} at step 0, {sigmas[-1]:.4f} at step "
              f"{steps[-1]}")
    context = plots.run_label(args.dataset, args.epochs, 2)
    views = plots.regularity_views(first, x_test[:2000], d.y_test[:2000], x_a[:4], x_b[:4],
                                   args.seeds[0], args.dataset, context)
    add_legend(views, {name: runs[0] for name, runs in per_seed.items()})
    _common.save_figures({
        "regularity": views,
        "sigma_collapse": plots.sigma_collapse(curves, context),
    }, args.out)
    return {"per_seed": per_seed, "summary": summary,
            "sigma": {k: v[1] for k, v in curves.items()}}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
