"""The cost of a diagonal q: the inference gap split into approximation, diagonal and amortisation.

    python demos/inference_gaps.py --test-split-only          # bundled MNIST split, offline

With the decoder frozen, log p(x) − ELBO(encoder's q) splits (Cremer, Li & Duvenaud 2018) into

    log p(x) − ELBO(q_full*)         what even the best full-covariance Gaussian misses
    ELBO(q_full*) − ELBO(q_diag*)    the cost of a diagonal q
    ELBO(q_diag*) − ELBO(q_encoder)  the amortisation gap

q_full* and q_diag* are fitted to each test image alone (``npvae.study.inference_gaps``), the
three ELBOs share their samples, and log p(x) is importance-sampled from q_full*.

1. **A case with every term known**: a linear-Gaussian decoder whose posterior is correlated
   (ρ ≈ −0.85): the cost of a diagonal q is ½ [Σ log Λ_ii − log det Λ] in closed form, and the
   measured split must find it.
2. **MNIST, Z = 2**: VAEs (diagonal q) and FullCovarianceVAEs trained on the bundled split for
   several seeds; for n test images each, the four numbers and the three gaps, mean ± sd over
   seeds, and the spread over images.

Writes inference_gaps.png (the gaps, and the true posterior of the images where a diagonal q
costs most, with the three q's 2σ ellipses) to --out.
"""

import sys

import numpy as np

import _common
import npvae
from npvae.run import plots
from npvae.run.inference_figures import inference_gaps_figure
from npvae.study import inference_gaps as gaps_study

V_CORRELATED = np.array([[1.0, 0.8, 0.6, 0.2, 0.0, 0.1],
                         [0.9, 0.7, 0.7, 0.0, 0.3, 0.0]])  # (Z, D): nearly parallel rows
MODELS = {"VAE (diagonal q)": npvae.VAE, "FullCovarianceVAE": npvae.FullCovarianceVAE}


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, latent=2, hidden=(200,),
                       out="figures/inference_gaps/{dataset}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--n-examples", type=int, default=100, help="test images per seed")
    p.add_argument("--steps", type=int, default=300, help="Adam steps fitting each q*")
    p.add_argument("--k-elbo", type=int, default=500, help="shared samples per ELBO")
    p.add_argument("--k-log-px", type=int, default=1000, help="importance samples of log p(x)")
    p.add_argument("--models", nargs="+", choices=["diag", "full"], default=["diag", "full"],
                   help="train VAEs with a diagonal q, with a full-covariance q, or both")
    return p


def linear_case(steps, seed):
    """Part 1: the measured cost of a diagonal q against its closed form, on 50 points."""
    model, cov = gaps_study.linear_gaussian_posterior_q(V_CORRELATED, np.zeros(6), 0.5)
    x = np.random.default_rng([seed, 7]).standard_normal((50, 6))
    g = gaps_study.inference_gaps(model, x, steps=steps, k_elbo=5000, k_log_px=2000,
                                  rng=np.random.default_rng([seed, 8]))
    rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    measured = g["elbo_full"] - g["elbo_diag"]
    print(f"1. linear-Gaussian, posterior correlation ρ = {rho:+.3f}: cost of a diagonal q "
          f"{measured.mean():.3f} ± {measured.std():.3f} nats (mean ± sd over 50 points), "
          f"closed form ½[Σ log Λ_ii − log det Λ] = {gaps_study.diagonal_cost(cov):.3f}; "
          f"log p(x) − ELBO(q_full*) = {(g['log_px'] - g['elbo_full']).mean():+.3f}")
    return {"rho": rho, "measured": measured, "closed_form": gaps_study.diagonal_cost(cov)}


def split(g):
    """The three gaps of one run, per example: {"approx", "diag", "amort"} -> (B,)."""
    return {"approx": g["log_px"] - g["elbo_full"], "diag": g["elbo_full"] - g["elbo_diag"],
            "amort": g["elbo_diag"] - g["elbo_encoder"]}


def mnist_case(args, d, cls, seed):
    """Part 2, one model and one seed: train, then split the gap on n test images."""
    model = _common.model_from_args(args, cls=cls, seed=seed)
    x_train, x_val, x_test = _common.split(d, seed)
    npvae.train(model, x_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                rng=np.random.default_rng([seed, 5]), binarize="dynamic", verbose=False)
    x = x_test[np.random.default_rng([seed, 6]).choice(len(x_test), args.n_examples,
                                                         replace=False)]
    g = gaps_study.inference_gaps(model, x, steps=args.steps, k_elbo=args.k_elbo,
                                  k_log_px=args.k_log_px, rng=np.random.default_rng([seed, 9]))
    return model, x, g


def report(name, seeds, runs):
    """Print one model kind's numbers: per seed, then mean ± sd over seeds and the spread over
    the images; return {"approx" | "diag" | "amort" | the four values: (mean, sd over seeds)}."""
    keys = ("log_px", "elbo_full", "elbo_diag", "elbo_encoder")
    print(f"\n{name}: per seed, mean over {len(runs[0][2]['log_px'])} test images (nats)")
    print(f"  {'seed':>4}  {'log p(x)':>9} {'ELBO q_full*':>13} {'ELBO q_diag*':>13} "
          f"{'ELBO encoder':>13}   {'approx':>7} {'diag':>7} {'amort':>7}")
    for seed, (_, _, g) in zip(seeds, runs):
        gaps = split(g)
        print(f"  {seed:>4}  " + " ".join(f"{g[k].mean():>{w}.2f}" for k, w in zip(
            keys, (9, 13, 13, 13))) + "   " + " ".join(f"{gaps[k].mean():>7.3f}" for k in
                                                     ("approx", "diag", "amort")))
    summary = {}
    for k in keys:
        per_seed = [g[k].mean() for _, _, g in runs]
        summary[k] = (float(np.mean(per_seed)), float(np.std(per_seed)))
    for k in ("approx", "diag", "amort"):
        per_seed = [split(g)[k].mean() for _, _, g in runs]
        summary[k] = (float(np.mean(per_seed)), float(np.std(per_seed)))
    print("  mean ± sd over seeds: " + ", ".join(
        f"{k} {m:.2f} ± {s:.2f}" for k, (m, s) in summary.items() if k in keys))
    for k, what in (("approx", "log p(x) − ELBO(q_full*)"),
                    ("diag", "ELBO(q_full*) − ELBO(q_diag*)"),
                    ("amort", "ELBO(q_diag*) − ELBO(q_encoder)")):
        pooled = np.concatenate([split(g)[k] for _, _, g in runs])
        m, s = summary[k]
        print(f"  {what:<32} {m:6.3f} ± {s:.3f} over seeds; over images: sd {pooled.std():.3f}, "
              f"90th percentile {np.percentile(pooled, 90):.3f}, max {pooled.max():.3f}, "
              f"> 0 for {np.mean(pooled > 0):.0%}")
    return summary


def main(argv=None):
    args, _, d = _common.parse_and_load(build_parser(), argv)
    print(f"settings: 784-{'-'.join(map(str, args.hidden))}-{args.latent}, {args.epochs} "
          f"epochs, seeds {args.seeds}, {args.n_examples} test images, {args.steps} steps per "
          f"q*, {args.k_elbo} shared samples per ELBO, k = {args.k_log_px} for log p(x)")
    result = {"linear": linear_case(max(args.steps, 300), args.seeds[0]), "summary": {}}
    chosen = {"diag": "VAE (diagonal q)", "full": "FullCovarianceVAE"}
    runs_by_model = {}
    for key in args.models:
        name = chosen[key]
        runs_by_model[name] = [mnist_case(args, d, MODELS[name], seed) for seed in args.seeds]
        result["summary"][name] = report(name, args.seeds, runs_by_model[name])
    first = runs_by_model[chosen[args.models[0]]][0]
    model, x, g = first
    worst = np.argsort(split(g)["diag"])[::-1][:3]  # where a diagonal q costs most
    qs = {k: (g[k][0][worst], g[k][1][worst]) for k in ("q_full", "q_diag", "q_encoder")}
    fig = inference_gaps_figure(result["summary"], model, x[worst], qs,
                                context=plots.run_label(args.dataset, args.epochs, args.latent))
    result["paths"] = _common.save_figures({"inference_gaps": fig}, args.out)
    result["runs"] = runs_by_model
    return result


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
