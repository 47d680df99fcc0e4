"""VAE against IWAE (K = 5): the same model, data and epochs, compared on test log p(x) and on
active units.

    python demos/iwae_vs_vae.py --dataset fashion-mnist
    python demos/iwae_vs_vae.py --dataset mnist --test-split-only   # only MNIST's test files

The VAE maximises the ELBO, E_q log w with w = p(x, z) / q(z|x). The IWAE (Burda et al. 2016)
maximises the K-sample bound L_K = E log (1/K) Σ_k w_k, which lies between the ELBO (K = 1) and
log p(x), and tightens as K grows. Its gradient weights each sample's gradient by its normalised
weight w̃_k = w_k / Σ_k' w_k', so a sample of q that explains x badly costs little: q(z|x) may
spread wider than the true posterior, and the model may use more of its latent units. Burda et
al. saw both: a better log-likelihood, and more active units (a unit is active when its
posterior mean moves with x: Var_x E_q[z_j|x] > 0.01).

Both models start from the same weights and see the same minibatches (dynamically binarized);
they are scored on the same statically binarized test set, and their log p(x) is compared
example by example (the same images and noise), which gives the gain a small standard error.
Units switch off slowly (Burda et al. trained for 3,280 passes): after the default 10 epochs
only a few of the VAE's have, and after 5 epochs of 20,000 images none have in either model;
the left panel shows the whole spectrum, how evenly each model spreads its activity. It prints
a table and writes iwae_vs_vae.png: each latent unit's activity, and the test ELBO and log p(x)
of both models. The IWAE's ELBO is lower: it is not what the IWAE maximises.
"""

import sys
import time

import matplotlib.pyplot as plt
import numpy as np

import _common
from npvae.study import evaluate
from npvae.run import plots
from npvae import train


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, latent=50,
                       out="figures/iwae_vs_vae/{dataset}")
    p.add_argument("--k", type=int, default=5, help="importance samples K of the IWAE")
    p.add_argument("--k-eval", type=int, default=500,
                   help="importance samples of the test log-likelihood estimate")
    p.add_argument("--n-ll", type=int, default=1000,
                   help="test examples for the (slower) log-likelihood estimate")
    return p


def fit_and_score(name, objective, k, args, x_train, x_val, x_test):
    """Train one model (the same initial weights and minibatches for every call) and score it."""
    print(f"--- {name}")
    model = _common.model_from_args(args)
    start = time.perf_counter()
    history = train(model, x_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    x_val=x_val, binarize="dynamic", objective=objective, k=k,
                    rng=np.random.default_rng([args.seed, 1]))
    seconds = time.perf_counter() - start
    log_p = evaluate.log_likelihood(model, x_test[:args.n_ll], k=args.k_eval,
                                    rng=np.random.default_rng([args.seed, 6]))
    return {
        "name": name, "seconds": seconds, "history": history,
        "elbo": evaluate.elbo(model, x_test, rng=np.random.default_rng([args.seed, 5]))["elbo"],
        "log_p": float(log_p.mean()), "log_p_se": float(log_p.std() / np.sqrt(len(log_p))),
        "log_p_each": log_p,  # (n_ll,): the same images and the same noise for both models
        "variance": evaluate.posterior_mean_variance(model, x_test),  # (Z,)
        "active": evaluate.active_units(model, x_test),
    }


def paired_gain(results):
    """IWAE − VAE in log p(x), mean and standard error over the same test images."""
    gain = results[1]["log_p_each"] - results[0]["log_p_each"]  # (n_ll,)
    return float(gain.mean()), float(gain.std() / np.sqrt(len(gain)))


def table(results, args, n_test):
    lines = [f"{'model':<14}{'train s':>9}{'test ELBO':>11}{'test log p(x)':>15}"
             f"{'active units':>14}",
             "-" * 63]
    for r in results:
        lines.append(f"{r['name']:<14}{r['seconds']:>9.0f}{r['elbo']:>11.2f}"
                     f"{r['log_p']:>9.2f} ± {r['log_p_se']:.2f}"
                     f"{r['active']:>8d} / {args.latent}")
    lines.append(f"(nats per example; ELBO on {n_test:,} test images, log p(x) by importance "
                 f"sampling with k = {args.k_eval} on {min(args.n_ll, n_test):,} of them, "
                 f"± 1 s.e.)")
    gain, se = paired_gain(results)
    lines.append(f"{results[1]['name']} − VAE in test log p(x): {gain:+.2f} ± {se:.2f} nats "
                 f"(paired: the same images and noise for both)")
    return "\n".join(lines)


def figure(results, context):
    """Left: Var_x E[z_j|x] of every unit, sorted. Right: test ELBO and log p(x) per model."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), width_ratios=[1.4, 1])
    for i, r in enumerate(results):
        ax1.semilogy(np.arange(1, len(r["variance"]) + 1), np.sort(r["variance"])[::-1], "o-",
                     ms=3, color=f"C{i}", label=f"{r['name']}: {r['active']} active")
    ax1.axhline(evaluate.ACTIVE_THRESHOLD, color="k", ls=":", lw=1, label="threshold 0.01")
    ax1.set_xlabel("latent unit (sorted by activity)")
    ax1.set_ylabel("Var over x of E[z_j | x]")
    ax1.set_title("active units")
    ax1.legend()
    ax1.xaxis.get_major_locator().set_params(integer=True)
    for i, r in enumerate(results):  # the gap between the two bounds, then each bound
        ax2.plot([i, i], [r["elbo"], r["log_p"]], color=f"C{i}", lw=1)
        ax2.plot(i, r["elbo"], "o", color=f"C{i}", ms=7)
        ax2.errorbar(i, r["log_p"], yerr=r["log_p_se"], fmt="s", color=f"C{i}", ms=7, capsize=3)
        for key in ("elbo", "log_p"):
            ax2.annotate(f"{r[key]:.1f}", (i, r[key]), textcoords="offset points",
                         xytext=(9, -3), fontsize=8)
    ax2.plot([], [], "ko", label="test ELBO")
    ax2.plot([], [], "ks", label="test log p(x), IWAE estimate ± 1 s.e.")
    ax2.set_xlim(-0.7, len(results) - 0.1)
    ax2.set_xticks(np.arange(len(results)), [r["name"] for r in results])
    ax2.set_xlabel("trained with")
    ax2.set_ylabel("nats per example (higher is better)")
    gain, se = paired_gain(results)
    ax2.set_title(f"test bounds on log p(x)\n{results[1]['name']} − VAE: {gain:+.2f} ± {se:.2f} "
                  f"nats (paired)")
    ax2.grid(axis="x", visible=False)
    ax2.margins(y=0.2)
    ax2.legend(loc="best")
    fig.suptitle(f"VAE vs IWAE — {context}")
    return fig


def main(argv=None):
    args, _, _, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    results = [fit_and_score("VAE", "elbo", 1, args, x_train, x_val, x_test),
               fit_and_score(f"IWAE (K={args.k})", "iwae", args.k, args, x_train, x_val,
                             x_test)]
    print(table(results, args, len(x_test)))
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    with plots.style():  # the npvae look, as for every figure of plots.py
        fig = figure(results, context)
    path = plots.savefig(fig, f"{args.out}/iwae_vs_vae.png")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
