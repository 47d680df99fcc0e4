"""A linear VAE learns probabilistic PCA: its decoder spans the principal subspace, and its
ELBO reaches the PPCA maximum likelihood.

    python demos/linear_vae_pca.py                             # synthetic low-rank data
    python demos/linear_vae_pca.py --source images --dataset fashion-mnist   # 10,000 images

The VAE has no hidden layers and a Gaussian decoder:
q(z|x) = N(x W_mu + b_mu, diag e^(x W_v + b_v)) and p(x|z) = N(z W + b, σ² I). Its generative model is exactly probabilistic PCA (Tipping &
Bishop 1999), whose maximum-likelihood fit has a closed form: mean = x̄, σ² = the mean of the
D - Z smallest eigenvalues of the covariance, and W = U_Z (Λ_Z - σ² I)^½ R for any rotation R.

Lucas et al. (2019, "Don't blame the ELBO!") show that with σ fixed at that σ², the global
maximum of the linear VAE's ELBO equals the PPCA maximum log-likelihood. The ELBO is
log p(x) - KL(q(z|x) ‖ p(z|x)); the true posterior is Gaussian with a covariance
σ² (WᵀW + σ² I)⁻¹ that does not depend on x, and it is diagonal, as q's must be, exactly
when the columns of W are orthogonal. Among the equally likely rotations R, the ELBO picks
the one that makes the bound tight: the decoder's columns become the principal axes
themselves, not just a basis of their span. So after training:

- the principal angles between the decoder's column space and the top-Z PCA subspace are
  near 0 degrees;
- the ELBO is within a fraction of a percent of the PPCA maximum log-likelihood (the rest is
  the noise of stochastic gradients, and the finite training);
- the decoder's exact log p(x) (the PPCA likelihood of its W, b, σ) is at the maximum too.

It prints the table, and writes linear_vae_pca.png to --out: the principal angles before and
after training, and the ELBO per epoch against the PPCA optimum.
"""

import math
import sys

import numpy as np

import _common
import npvae
from npvae import VAE, Adam
from npvae.study import evaluate
from npvae.run import plots
from npvae.study import ppca


# Defaults per --source, for the flags left unset. Pixels need a smaller step and more of them:
# their trailing eigenvalues are tiny, so σ² is small and the problem is ill-conditioned.
DEFAULTS = {
    "synthetic": {"epochs": 120, "batch_size": 50, "lr": 3e-2, "latent": 3},
    "images": {"epochs": 150, "batch_size": 100, "lr": 3e-3, "latent": 16, "n_train": 10000,
               "n_test": 2000},
}


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=None, out=None,  # see out_dir
                       hidden=None, latent=None)
    p.set_defaults(batch_size=None, lr=None)
    p.add_argument("--source", choices=["synthetic", "images"], default="synthetic",
                   help="synthetic low-rank data, or the pixels of --dataset; the flags left "
                        "at None take the defaults of the source: synthetic "
                        + str(DEFAULTS["synthetic"]) + ", images " + str(DEFAULTS["images"]))
    p.add_argument("--n", type=int, default=2000, help="synthetic: training examples")
    p.add_argument("--dim", type=int, default=20, help="synthetic: data dimension D")
    p.add_argument("--noise", type=float, default=1.0, help="synthetic: noise σ of the data")
    return p


def out_dir(args):
    """--out, else figures/linear_vae_pca/synthetic, or .../DATASET for --source images."""
    name = "synthetic" if args.source == "synthetic" else args.dataset
    return args.out or f"figures/linear_vae_pca/{name}"


def load(args, rng):
    """(x_train, x_test, description) as float64 arrays."""
    if args.source == "synthetic":
        n_test = args.n_test or max(1, args.n // 4)
        X, _, _ = ppca.low_rank_data(args.n + n_test, args.dim, args.latent, args.noise, rng)
        return X[: args.n], X[args.n:], (f"synthetic: D = {args.dim}, rank {args.latent}, "
                                          f"noise σ = {args.noise:g}")
    d = _common.load(args, rng)
    return d.x_train.astype(np.float64), d.x_test.astype(np.float64), d.description


def main(argv=None):
    args = build_parser().parse_args(argv)
    for key, value in DEFAULTS[args.source].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    rng = np.random.default_rng(args.seed)
    x_train, x_test, source = load(args, rng)
    Z = args.latent
    print(f"data: {source}; train {len(x_train):,}, test {len(x_test):,} examples")

    # Probabilistic PCA in closed form: the maximum of the likelihood, and the subspace.
    mean, W, sigma2 = ppca.fit_ppca(x_train, Z)
    ppca_ll = {name: float(ppca.ppca_log_likelihood(x, mean, W, sigma2).mean())
               for name, x in [("train", x_train), ("test", x_test)]}

    # The linear VAE, with the decoder's σ fixed at the PPCA maximum-likelihood σ.
    model = VAE(x_train.shape[1], hidden_dims=(), latent_dim=Z, likelihood="gaussian",
                sigma=math.sqrt(sigma2), dtype=np.float64, seed=args.seed)
    # The decoder's mean is z out.W + out.b, so its columns span out.Wᵀ : (D, Z).
    angles_init = ppca.principal_angles(model.params["out.W"].T, W)
    # Adam at --lr, then the last quarter of the epochs at a tenth of it, to settle the noise.
    optimizer = Adam(model.params, lr=args.lr)
    history = npvae.train(model, x_train, epochs=args.epochs - args.epochs // 4,
                          batch_size=args.batch_size, optimizer=optimizer, rng=rng,
                          verbose=False)
    optimizer.lr = args.lr / 10
    history = npvae.train(model, x_train, epochs=args.epochs, batch_size=args.batch_size,
                          optimizer=optimizer, rng=rng, history=history, verbose=False)
    angles = ppca.principal_angles(model.params["out.W"].T, W)

    rows = {}
    for name, x in [("train", x_train), ("test", x_test)]:
        # The ELBO with 10 draws of eps per example (each example repeated 10 times).
        elbo = evaluate.elbo(model, np.repeat(x, 10, axis=0),
                             rng=np.random.default_rng([args.seed, 5]))["elbo"]
        exact = float(ppca.ppca_log_likelihood(x, *ppca.linear_vae_marginal(model)).mean())
        rows[name] = {"ppca": ppca_ll[name], "elbo": elbo, "log_p": exact,
                      "gap": (ppca_ll[name] - elbo) / abs(ppca_ll[name])}
    print(f"\n{'nats per example':34s} {'train':>10s} {'test':>10s}")
    for label, key in [("PPCA log-likelihood (ML on train)", "ppca"), ("linear VAE ELBO", "elbo"),
                       ("linear VAE exact log p(x)", "log_p")]:
        print(f"{label:34s} {rows['train'][key]:10.3f} {rows['test'][key]:10.3f}")
    print(f"{'ELBO below the PPCA optimum':34s} {rows['train']['gap']:10.2%} "
          f"{rows['test']['gap']:10.2%}")
    print(f"principal angles, decoder vs top-{Z} PCA subspace (degrees): "
          f"{' '.join(f'{a:.2f}' for a in angles)}  (at initialisation: "
          f"{' '.join(f'{a:.1f}' for a in angles_init)})")

    name = "synthetic" if args.source == "synthetic" else args.dataset
    context = plots.run_label(name, args.epochs, Z)
    fig = plots.linear_vae_vs_pca(angles, history, ppca_ll["train"], angles_init, context)
    _common.save_figures({"linear_vae_pca": fig}, out_dir(args))
    return {"angles": angles, "angles_init": angles_init, "train": rows["train"],
            "test": rows["test"], "history": history}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
