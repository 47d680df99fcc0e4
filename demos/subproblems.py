"""The two sub-problems of VAE training, and the spread of a minibatch gradient, on MNIST.

    python demos/subproblems.py                     # idle time untimed (slow at load 11)

The ELBO is maximised over two sets of weights at once, and each answers its own question:

1. **The φ step (inference).** The decoder θ frozen, a fresh encoder trained alone. log p(x)
   is a property of the decoder only, so it cannot move (its importance-weighted estimate moves
   only by the estimator's noise, and by how good a proposal the new encoder is); the ELBO
   climbs towards it: the bound tightens, KL(q ‖ p(z|x)) shrinks. (``demos/inference.py`` shows
   the same exactly, for a linear model.)
2. **The θ step (learning).** The encoder φ frozen, a fresh decoder trained alone against its
   codes. Now the model itself changes: log p(x) climbs with the ELBO.
3. **The minibatch estimate.** Every step uses the gradient of B examples for the gradient of
   all N. With eps held fixed per example, the full-batch gradient g is computed once, and the
   minibatch gradients g_B of 20 batches of each size are compared with it: the relative error
   ‖g_B − g‖ / ‖g‖ shrinks like 1/√B (the printed error × √B stays nearly constant while B is
   small against N).

One base VAE (784-400-20, Bernoulli) is trained per seed for --epochs; from it each step starts
with the other half re-initialised and runs --steps Adam steps. Numbers are on test images
(the ELBO with k = 1 noise draws averaged, log p(x) by importance sampling with --k samples),
mean ± sd over the seeds. Writes subproblems.png: the ELBO and log p(x) before and after each
step, and the minibatch error against B.
"""

import copy
import sys

import numpy as np

import _common
import npvae
from npvae.run import data, plots
from npvae.study import evaluate

ENCODER = ("encoder.", "mu.", "logvar.")  # the keys of φ; every other parameter is θ


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=5, out="figures/subproblems/{dataset}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one base model per seed")
    p.add_argument("--steps", type=int, default=300, help="Adam steps of each sub-problem")
    p.add_argument("--k", type=int, default=100, help="importance samples for log p(x)")
    p.add_argument("--n-eval", type=int, default=500, help="test images scored")
    p.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256, 1024],
                   help="part 3: minibatch sizes B")
    return p


def scores(model, x, args, seed):
    """(test ELBO, test log p(x)), each a mean over x, with noise seeded by ``seed``."""
    elbo = evaluate.elbo(model, x, rng=np.random.default_rng([seed, 5]))["elbo"]
    log_p = evaluate.log_likelihood(model, x, k=args.k, rng=np.random.default_rng([seed, 6]))
    return float(elbo), float(log_p.mean())


def one_step(model, which, args, x_train, seed):
    """A copy of ``model`` with ``which`` ("phi": the encoder, "theta": the decoder)
    re-initialised and trained alone for args.steps Adam steps on the ELBO."""
    model = copy.deepcopy(model)
    fresh = npvae.VAE(784, model.config.hidden_dims, model.latent_dim, seed=seed + 1000)
    trained = {k: v for k, v in model.params.items() if k.startswith(ENCODER) == (which == "phi")}
    for key in trained:
        trained[key][...] = fresh.params[key]
    opt = npvae.Adam(trained, lr=args.lr)
    rng = np.random.default_rng([seed, 7])
    for _ in range(args.steps):
        batch = data.binarize(x_train[rng.choice(len(x_train), args.batch_size)], rng)
        _, grads, _ = model.loss_and_grads(batch, rng=rng)
        opt.step({k: grads[k] for k in trained})  # the other half stays where it is
    return model


def flat(grads):
    return np.concatenate([g.ravel() for g in grads.values()]).astype(np.float64)


def minibatch_spread(model, x, batches, seed):
    """Relative errors ‖g_B − g‖ / ‖g‖ of 20 minibatch gradients per B against the full-batch
    gradient g, eps fixed per example: {B: (mean, sd) over the batches}."""
    rng = np.random.default_rng([seed, 8])
    eps = rng.standard_normal((len(x), model.latent_dim)).astype(model.dtype)  # (N, Z)
    full = np.zeros(sum(v.size for v in model.params.values()))
    for start in range(0, len(x), 1000):  # the mean over N, in chunks of 1000
        part = slice(start, start + 1000)
        _, grads, _ = model.loss_and_grads(x[part], eps=eps[part])
        full += flat(grads) * len(x[part]) / len(x)
    result = {}
    for B in batches:
        errors = []
        for _ in range(20):
            index = rng.choice(len(x), min(B, len(x)), replace=False)
            _, grads, _ = model.loss_and_grads(x[index], eps=eps[index])
            errors.append(np.linalg.norm(flat(grads) - full) / np.linalg.norm(full))
        result[B] = (float(np.mean(errors)), float(np.std(errors, ddof=1)))
    return result


def main(argv=None):
    args, _, d = _common.parse_and_load(build_parser(), argv)
    x_test = data.binarize(d.x_test[:args.n_eval], np.random.default_rng(4))
    rows = {"phi": [], "theta": []}
    spread = None
    for seed in args.seeds:
        args.seed = seed
        x_train, x_val, _ = _common.split(d, seed)
        base = _common.model_from_args(args)
        _common.train(base, args, x_train, x_val, np.random.default_rng(seed), verbose=False)
        before = scores(base, x_test, args, seed)
        for which in rows:
            start = copy.deepcopy(base)
            trained = one_step(base, which, args, x_train, seed)
            keys = [k for k in base.params if k.startswith(ENCODER) == (which == "phi")]
            for key in keys:  # the starting point: the base with that half re-initialised
                start.params[key][...] = npvae.VAE(784, base.config.hidden_dims,
                                                   base.latent_dim, seed=seed + 1000
                                                   ).params[key]
            s0, s1 = scores(start, x_test, args, seed), scores(trained, x_test, args, seed)
            rows[which].append({"elbo_start": s0[0], "elbo_end": s1[0], "log_p_start": s0[1],
                                "log_p_end": s1[1], "base_elbo": before[0],
                                "base_log_p": before[1]})
            print(f"  seed {seed}, {which} step: ELBO {s0[0]:8.2f} → {s1[0]:8.2f}, log p(x) "
                  f"{s0[1]:8.2f} → {s1[1]:8.2f} (the base model: {before[0]:.2f}, "
                  f"{before[1]:.2f})")
        if spread is None:
            spread = minibatch_spread(base, data.binarize(
                x_train, np.random.default_rng([seed, 9])), args.batches, seed)

    def stat(which, key):
        v = np.array([r[key] for r in rows[which]])
        return float(v.mean()), float(v.std(ddof=1) if len(v) > 1 else 0.0)

    summary = {}
    n = len(args.seeds)
    print(f"mean ± sd over {n} seeds, {args.steps} Adam steps each, {len(x_test)} test images:")
    for which, label in (("phi", "φ step (decoder frozen, encoder trained)"),
                         ("theta", "θ step (encoder frozen, decoder trained)")):
        for key in ("elbo", "log_p"):
            gain = np.array([r[f"{key}_end"] - r[f"{key}_start"] for r in rows[which]])
            summary[(which, key)] = (float(gain.mean()),
                                     float(gain.std(ddof=1) if n > 1 else 0.0))
        e, lp = summary[(which, "elbo")], summary[(which, "log_p")]
        print(f"  {label}: the ELBO gains {e[0]:7.2f} ± {e[1]:.2f} nats, log p(x) "
              f"{lp[0]:7.2f} ± {lp[1]:.2f}")
    phi_end = np.array([r["log_p_end"] - r["base_log_p"] for r in rows["phi"]])
    summary["phi_end_vs_base"] = (float(phi_end.mean()),
                                  float(phi_end.std(ddof=1) if n > 1 else 0.0))
    print(f"  after the φ step the estimate of log p(x) is {phi_end.mean():.2f} ± "
          f"{summary['phi_end_vs_base'][1]:.2f} nats from the base model's: the decoder, and so "
          f"the true log p(x), never changed; the estimate started low only because a random "
          f"encoder is a poor proposal for importance sampling")
    print("  the φ step tightens the bound on a model that stays put; the θ step moves the "
          "model itself")
    print(f"3. the minibatch gradient against the full batch of {len(x_train)} (mean ± sd over "
          f"20 batches):")
    for B, (m, s) in spread.items():
        print(f"   B = {B:5d}: ‖g_B − g‖ / ‖g‖ = {m:.3f} ± {s:.3f}; × √B = {m * np.sqrt(B):.2f}")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    _common.save_figures({"subproblems": figure(rows, spread, context)}, args.out)
    return {"rows": rows, "summary": summary, "spread": spread}


def figure(rows, spread, context):
    """Left: ELBO and log p(x) before and after each step (seed 0). Right: error against B."""
    import matplotlib.pyplot as plt

    with plots.style():
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, which, title in ((axes[0], "phi", "φ step: encoder trained, decoder frozen"),
                                 (axes[1], "theta", "θ step: decoder trained, encoder frozen")):
            r = rows[which][0]
            ax.plot([0, 1], [r["elbo_start"], r["elbo_end"]], "o-", label="ELBO")
            ax.plot([0, 1], [r["log_p_start"], r["log_p_end"]], "s-", label="log p(x) (IWAE)")
            ax.axhline(r["base_log_p"], color="grey", ls=":", label="the base model's log p(x)")
            ax.set_xticks([0, 1], ["re-initialised", "after the steps"])
            ax.set_ylabel("nats per test image")
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=7)
        B = np.array(list(spread))
        m = np.array([v[0] for v in spread.values()])
        s = np.array([v[1] for v in spread.values()])
        axes[2].errorbar(B, m, yerr=s, marker="o", capsize=3, label="measured")
        axes[2].plot(B, m[0] * np.sqrt(B[0] / B), "--", color="grey", label="∝ 1/√B")
        axes[2].set_xscale("log")
        axes[2].set_yscale("log")
        axes[2].set_xticks(B, [str(b) for b in B])
        axes[2].xaxis.set_minor_formatter(plt.NullFormatter())
        # ticks at 1, 2 and 5 times each power of ten, so the log axis shows several values
        axes[2].yaxis.set_major_locator(plt.LogLocator(subs=(1.0, 2.0, 5.0)))
        axes[2].yaxis.set_minor_formatter(plt.NullFormatter())
        axes[2].yaxis.set_major_formatter(plt.FormatStrFormatter("%g"))
        axes[2].set_xlabel("minibatch size B")
        axes[2].set_ylabel("‖g_B − g‖ / ‖g‖")
        axes[2].set_title("minibatch gradient against the full batch", fontsize=9)
        axes[2].legend(fontsize=7)
        fig.suptitle(plots._title("The two sub-problems, and the minibatch estimate", context))
    return fig


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
