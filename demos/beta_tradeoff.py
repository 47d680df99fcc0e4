"""How the weight of the KL trades reconstruction against compression (the beta-VAE).

    python demos/beta_tradeoff.py --dataset fashion-mnist

The loss is recon + beta · KL (Higgins et al. 2017). With beta < 1 the model may spend more
nats on the code to reconstruct better; with beta > 1 it pays more per nat, so it keeps fewer.
Each beta gives a point on the rate–distortion curve (Alemi et al. 2018): rate = the KL, in
nats, and distortion = the reconstruction term, -log p(x|z). On the dashed lines
recon + KL, the -ELBO of beta = 1, is constant: beta = 1 lands nearest the bottom-left.

It writes beta_tradeoff.png to --out (the curve, measured on the test set, and prior samples
of each model) and prints the table of the numbers.
"""

import sys

import numpy as np

import _common
from npvae.study import evaluate
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=5, n_train=20000,
                       out="figures/beta_tradeoff/{dataset}")
    p.add_argument("--betas", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
                   help="the KL weights to train with")
    return p


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    recon, kl, samples = [], [], []
    for beta in args.betas:
        print(f"--- beta = {beta:g}")
        model = _common.model_from_args(args)  # the same initial weights for every beta
        _common.train(model, args, x_train, x_val, rng, beta=beta)
        result = evaluate.elbo(model, x_test, rng=np.random.default_rng([args.seed, 5]))
        recon.append(result["recon"])
        kl.append(result["kl"])
        samples.append(model.sample(10, rng=np.random.default_rng([args.seed, 7])))

    print(f"{'beta':>6s} {'recon':>9s} {'KL':>8s} {'-ELBO':>9s}   (test, nats per example)")
    for beta, r, k in zip(args.betas, recon, kl):
        print(f"{beta:6g} {r:9.2f} {k:8.2f} {r + k:9.2f}")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    fig = plots.beta_tradeoff(args.betas, recon, kl, samples, context)
    _common.save_figures({"beta_tradeoff": fig}, args.out)
    return {"betas": args.betas, "recon": recon, "kl": kl}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
