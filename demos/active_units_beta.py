"""How many latent units a VAE uses, as the KL weight beta grows, with and without free bits.

    python demos/active_units_beta.py --dataset fashion-mnist
    python demos/active_units_beta.py --dataset mnist --test-split-only   # only MNIST's test files

The loss is recon + beta · KL. The larger beta, the more each nat of information in z costs,
and the more latent units the encoder switches off: q(z_j|x) = N(0, 1) whatever x, a unit that
tells the decoder nothing ("posterior collapse"). A unit counts as active when its posterior
mean moves with x: Var_x E_q[z_j|x] > 0.01 (Burda et al. 2016).

Free bits (Kingma et al. 2016) replace the KL term by Σ_j max(λ, KL_j), KL_j the batch-mean KL
of unit j. Below λ nats a unit's KL costs nothing (its gradient is zero), so the encoder may
spend up to λ nats in each unit for free, and fewer units collapse at large beta.

Units switch off gradually, over many steps, so the defaults buy steps: a 784-200-20 model,
batches of 64 and a learning rate of 2e-3. Every run starts from the same weights and sees the
same minibatches. It prints a line per run and writes active_units_beta.png: active units and
the test KL against beta.
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
    p = _common.parser(__doc__.splitlines()[0], epochs=3, n_train=20000, latent=20,
                       hidden=(200,), out="figures/active_units_beta/{dataset}")
    p.set_defaults(batch_size=64, lr=2e-3)  # more, quicker steps: units switch off step by step
    p.add_argument("--betas", type=float, nargs="+", default=[1, 2, 4, 8, 16],
                   help="the KL weights to train with")
    p.add_argument("--free-bits", type=float, default=0.5,
                   help="λ, nats per latent unit, of the second series (0: plain runs only)")
    return p


def run(args, beta, free_bits, x_train, x_test):
    """Train one model with this beta and free-bits floor; its active units, KL and recon."""
    model = _common.model_from_args(args)  # the same initial weights for every run
    start = time.perf_counter()
    train(model, x_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=beta,
          free_bits=free_bits, binarize="dynamic", rng=np.random.default_rng([args.seed, 1]),
          verbose=False)
    test = evaluate.elbo(model, x_test, rng=np.random.default_rng([args.seed, 5]))
    result = {"beta": beta, "free_bits": free_bits, "active": evaluate.active_units(model, x_test),
              "kl": test["kl"], "recon": test["recon"], "seconds": time.perf_counter() - start}
    print(f"beta {beta:<5g} free bits {free_bits:<4g} active {result['active']:2d} / "
          f"{args.latent}  KL {result['kl']:6.2f}  recon {result['recon']:7.2f}  "
          f"({result['seconds']:.0f} s)", flush=True)
    return result


def figure(series, args, context):
    """Left: active units against beta. Right: the test KL against beta."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (label, results) in enumerate(series.items()):
        betas = [r["beta"] for r in results]
        ax1.plot(betas, [r["active"] for r in results], "o-", color=f"C{i}", label=label)
        ax2.plot(betas, [r["kl"] for r in results], "o-", color=f"C{i}", label=label)
    if args.free_bits:
        ax2.axhline(args.free_bits * args.latent, color="0.5", ls=":", lw=1,
                    label=f"Z·λ = {args.free_bits * args.latent:g} nats")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(args.betas, [f"{b:g}" for b in args.betas])
        ax.set_xlabel("β, the weight of the KL")
        ax.legend()
    ax1.set_ylim(0, args.latent + 1)
    ax1.yaxis.get_major_locator().set_params(integer=True)
    ax1.set_ylabel(f"active units (of Z = {args.latent})")
    ax1.set_title("units with Var_x E[z_j | x] > 0.01")
    ax2.set_ylabel("KL(q(z|x) ‖ p(z)), test (nats)")
    ax2.set_title("information kept in z")
    fig.suptitle(f"Active units against β — {context}")
    return fig


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.free_bits < 0 or min(args.betas) <= 0:
        parser.error(f"--betas must be positive and --free-bits ≥ 0, got --betas "
                     f"{' '.join(map(str, args.betas))} --free-bits {args.free_bits}.")
    rng = np.random.default_rng(args.seed)
    d = _common.load(args, rng)
    print(f"data: {d.description}")
    x_train, _, x_test = _common.split(d, args.seed)
    floors = [0.0] + ([args.free_bits] if args.free_bits else [])
    series = {("plain KL" if fb == 0 else f"free bits, λ = {fb:g} nats"):
              [run(args, beta, fb, x_train, x_test) for beta in args.betas] for fb in floors}
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    with plots.style():  # the npvae look, as for every figure of plots.py
        fig = figure(series, args, context)
    path = plots.savefig(fig, f"{args.out}/active_units_beta.png")
    print(f"wrote {path}")
    return series


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
