"""The same layers trained three ways, and the 2-D latent space each one learns.

    python demos/latent_spaces.py --dataset fashion-mnist

Three models with the same architecture (784-400-2, Bernoulli decoder) and the same data:

1. Reconstruction only: a deterministic autoencoder. It is the VAE with the noise switched off
   and the KL dropped: with eps = 0 the sampler gives z = mu + σ·0 = mu(x), and with beta = 0
   the loss is -log p(x | z = mu(x)), the autoencoder's reconstruction loss through the mu head.
   (The logvar head then gets no gradient, dlogvar = dz·eps·σ/2 = 0, and is never used.) An
   autoencoder is a non-linear PCA: it places the classes apart, but it has no reason to fill
   the space evenly or to keep its codes near the origin, so it leaves holes that decode to
   nothing in particular.
2. KL only: the loss is KL(q(z|x) ‖ N(0, I)) alone, minimised by q(z|x) = N(0, I) for every x.
   All codes collapse onto the prior and carry no information about x.
3. The full ELBO: the reconstruction term spreads the codes apart, the KL term pulls them into
   the prior's ball. The result is smooth and complete: nearby codes decode to similar images,
   and there are no holes in the region the prior samples from.

It writes latent_spaces.png to --out: the posterior means of the test images, side by side.
"""

import sys

import numpy as np

import _common
from npvae import VAE
from npvae.study import evaluate
from npvae.run import plots


class Autoencoder(VAE):
    """The VAE's layers as a deterministic autoencoder: z = mu(x), no KL (eps = 0, beta = 0)."""

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, **kwargs):
        eps = np.zeros((len(x), self.latent_dim), dtype=self.dtype)  # (B, Z): z = mu exactly
        return super().loss_and_grads(x, eps=eps, beta=0.0, **kwargs)


class KLOnly(VAE):
    """The VAE trained on its KL term alone.

    The gradient of the KL is that of the full loss minus that of the reconstruction, taken at
    the same eps: ∇KL = ∇(recon + 1·KL) - ∇(recon + 0·KL). The decoder's gradients cancel
    exactly, so only the encoder learns, and it learns to output the prior.
    """

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, **kwargs):
        rng = self.rng if rng is None else rng
        eps = rng.standard_normal((len(x), self.latent_dim), dtype=self.dtype)  # (B, Z)
        _, full, stats = super().loss_and_grads(x, eps=eps, beta=1.0, **kwargs)
        _, recon, _ = super().loss_and_grads(x, eps=eps, beta=0.0, **kwargs)
        grads = {name: full[name] - recon[name] for name in full}
        return stats["kl"], grads, {**stats, "loss": stats["kl"]}


def build_parser():
    return _common.parser(__doc__.splitlines()[0], epochs=5, n_train=20000, latent=2,
                          out="figures/latent_spaces/{dataset}")


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    panels, results = [], {}
    for name, cls in [("reconstruction only (autoencoder)", Autoencoder),
                      ("KL only", KLOnly), ("full ELBO (VAE)", VAE)]:
        print(f"--- {name}")
        model = _common.model_from_args(args, cls=cls)  # the same initial weights for all three
        _common.train(model, args, x_train, x_val, rng)
        # Where the codes sit and what they keep: the reconstruction at z = mu(x), and the KL.
        zeros = np.zeros((len(x_test), model.latent_dim), dtype=model.dtype)  # (N, Z)
        results[name] = {"recon at mu": float(model.nll(x_test, zeros).mean()),
                         "KL": (float(evaluate.kl_per_dimension(model, x_test).sum())
                                if cls is not Autoencoder else None)}  # the AE has no q(z|x)
        mu, _ = model.encode(d.x_test)  # (N, 2)
        panels.append((name, mu, d.y_test))

    print(f"{'trained with':36s} {'-log p(x|mu(x))':>16s} {'KL':>8s}   (test, nats)")
    for name, r in results.items():
        kl = "—" if r["KL"] is None else f"{r['KL']:.2f}"
        print(f"{name:36s} {r['recon at mu']:16.2f} {kl:>8s}")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    fig = plots.latent_spaces(panels, args.dataset, context)
    _common.save_figures({"latent_spaces": fig}, args.out)
    return {"panels": panels, "results": results}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
