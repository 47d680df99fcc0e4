"""Inference, as the source notes derive the VAE: the ELBO identity, EM, and the true posterior.

    python demos/inference.py                       # MNIST for part 3 (bundled split offline)

1. **log p(x) = ELBO + KL(q(z|x) ‖ p(z|x)), exactly.** A linear-Gaussian VAE (D = 10, Z = 2,
   synthetic data) has all three terms in closed form (``npvae.study.ppca.elbo_identity``). Its decoder
   θ is set to the maximum-likelihood PPCA fit and frozen; the encoder φ starts from random
   weights and is trained alone, by Adam on the ELBO. log p(x) does not depend on φ, so every
   nat the ELBO gains is a nat the KL to the true posterior loses: maximising the ELBO over φ
   is minimising that KL.
2. **EM, and the VAE as amortised variational EM.** The same data fitted three ways: PPCA in
   closed form; EM (``npvae.study.ppca.em_ppca``: the E-step is the exact posterior, the M-step is
   closed form); and the linear VAE trained by Adam on the ELBO, which replaces the E-step by an
   encoder that predicts q(z|x) for every x at once. The exact log-likelihood of each, per
   iteration or epoch.
3. **Amortisation, and the true posterior of a non-linear decoder.** A 784-400-2 VAE on MNIST:
   for 200 test images, the ELBO of the encoder's q, of the best diagonal Gaussian found for
   each image alone (``npvae.study.inference.optimize_q``), and the IWAE log p(x): the amortisation
   gap and the approximation gap. For a few test images, p(z|x) ∝ p(x|z) p(z) evaluated on a
   grid and normalised, with the encoder's q(z|x) drawn over it (its 1σ and 2σ ellipses).

Writes elbo_identity.png, em.png and posteriors.png to --out, and prints the numbers.
"""

import sys

import numpy as np

import _common
import npvae
from npvae.study import inference
from npvae.run import plots
from npvae.study import ppca


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, latent=2, hidden=(400,),
                       out="figures/inference/{dataset}")
    p.add_argument("--steps", type=int, default=400, help="Adam steps on the encoder alone")
    p.add_argument("--n-gap", type=int, default=200,
                   help="test images whose amortisation gap is measured (default: 200)")
    return p


def synthetic(rng, n=1000, D=10, noise=0.5):
    """PPCA data: x = z Wᵀ + noise, z ~ N(0, I_2)."""
    X, _, _ = ppca.low_rank_data(n, D, 2, noise, rng)
    return X


def elbo_identity_run(X, steps, seed):
    """Part 1: the decoder frozen at the PPCA optimum, the encoder trained alone. Returns
    {"step", "log_px", "elbo", "kl"}: means over the data after each of ``steps`` steps."""
    mean, W, sigma2 = ppca.fit_ppca(X, 2)
    model = npvae.VAE(X.shape[1], hidden_dims=(), latent_dim=2, likelihood="gaussian",
                      sigma=np.sqrt(sigma2), dtype=np.float64, seed=seed)
    model.params["out.W"][...], model.params["out.b"][...] = W.T, mean
    encoder = {k: v for k, v in model.params.items() if k.startswith(("mu.", "logvar."))}
    opt = npvae.Adam(encoder, lr=1e-2)
    rng = np.random.default_rng([seed, 1])
    curves = {"step": [], "log_px": [], "elbo": [], "kl": []}
    for step in range(steps + 1):
        if step % 5 == 0:
            for key, value in zip(("log_px", "elbo", "kl"), ppca.elbo_identity(model, X)):
                curves[key].append(float(value.mean()))
            curves["step"].append(step)
        _, grads, _ = model.loss_and_grads(X[rng.choice(len(X), 128)], rng=rng)
        opt.step({k: grads[k] for k in encoder})  # θ, the decoder, stays where it is
    return {k: np.array(v) for k, v in curves.items()}


def em_run(X, epochs, seed):
    """Part 2: the exact mean log-likelihood per iteration (EM) and per epoch (the linear VAE),
    and the closed-form optimum."""
    _, _, _, em_history = ppca.em_ppca(X, 2, n_iter=epochs, rng=np.random.default_rng(seed))
    best = ppca.ppca_log_likelihood(X, *ppca.fit_ppca(X, 2)).mean()
    model = npvae.VAE(X.shape[1], hidden_dims=(), latent_dim=2, likelihood="gaussian",
                      sigma=np.sqrt(ppca.fit_ppca(X, 2)[2]), dtype=np.float64, seed=seed)
    vae_history = [ppca.ppca_log_likelihood(X, *ppca.linear_vae_marginal(model)).mean()]
    npvae.train(model, X, epochs=epochs, batch_size=100, lr=1e-2, verbose=False,
                rng=np.random.default_rng([seed, 2]), hooks=[lambda e, r, m: vae_history.append(
                    ppca.ppca_log_likelihood(X, *ppca.linear_vae_marginal(m)).mean())])
    return {"EM (exact E-step)": em_history, "linear VAE, Adam on the ELBO":
            np.array(vae_history)}, best


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    X = synthetic(np.random.default_rng(args.seed))
    identity = elbo_identity_run(X, args.steps, args.seed)
    gained = identity["elbo"][-1] - identity["elbo"][0]
    lost = identity["kl"][0] - identity["kl"][-1]
    moved = np.ptp(identity["log_px"])
    print(f"1. encoder alone, {args.steps} steps: the ELBO rose {gained:.4f} nats, "
          f"KL(q ‖ p(z|x)) fell {lost:.4f} nats, log p(x) moved {moved:.1e} nats "
          f"(max |log p − ELBO − KL| = "
          f"{np.abs(identity['log_px'] - identity['elbo'] - identity['kl']).max():.1e})")
    histories, best = em_run(X, 60, args.seed)
    for name, h in histories.items():
        print(f"2. {name}: mean log p(x) {h[0]:.4f} at the start, {h[10]:.4f} after 10, "
              f"{h[-1]:.4f} after {len(h) - 1}; the closed-form optimum is {best:.4f}")
        falls = np.diff(h)
        print(f"   steps where log p(x) fell: {int((falls < -1e-9).sum())} of {len(falls)}"
              f" (largest fall {max(0.0, -falls.min()):.4f} nats)")
    print("   EM never lowers log p(x): its E-step makes the bound tight, its M-step raises it. "
          "The VAE has no such guarantee: a stochastic step on the ELBO over θ and φ together "
          "can lower log p(x) while it raises the bound")
    model = _common.model_from_args(args)
    _common.train(model, args, x_train, x_val, rng)
    gap = inference.amortization_gap(model, x_test[:args.n_gap],
                                     rng=np.random.default_rng([args.seed, 4]))
    means = {key: float(value.mean()) for key, value in gap.items()}
    print(f"3. amortisation, {len(gap['log_px'])} test images: ELBO of the encoder's q {means['elbo_encoder']:.2f}, "
          f"of the best q per image {means['elbo_optimal']:.2f}, log p(x) (IWAE, k = 1000) "
          f"{means['log_px']:.2f}: an amortisation gap of "
          f"{means['elbo_optimal'] - means['elbo_encoder']:.2f} nats and an approximation gap "
          f"of {means['log_px'] - means['elbo_optimal']:.2f}")
    approx = gap["log_px"] - gap["elbo_optimal"]  # (N,) per image
    se = float(approx.std(ddof=1) / np.sqrt(len(approx)))
    if means["log_px"] - means["elbo_optimal"] < 2 * se:
        print(f"   the approximation gap {means['log_px'] - means['elbo_optimal']:.2f} ± {se:.2f}"
              f" (standard error over the images) is noise: it cannot be negative, since "
              f"log p(x) ≥ every ELBO; the IWAE estimate of log p(x) is itself a lower bound, "
              f"so here the best diagonal q is as good as k = 1000 importance samples can tell")
    picks = x_test[np.random.default_rng([args.seed, 3]).choice(len(x_test), 4, replace=False)]
    context = plots.run_label(args.dataset, args.epochs, 2)
    _common.save_figures({
        "elbo_identity": plots.elbo_identity_curves(identity),
        "em": plots.em_curves(histories, best),
        "posteriors": plots.true_posteriors(model, picks, context=context),
    }, args.out)
    return {"identity": identity, "em": histories, "best": best, "gap": means}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
