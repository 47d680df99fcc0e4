"""The same layers trained three ways, and the 2-D latent space each one learns.

    python demos/latent_spaces.py                        # MNIST (the bundled split offline)
    python demos/latent_spaces.py --dataset fashion-mnist --seeds 0
    python demos/latent_spaces.py --epochs 3 --seeds 0   # quick

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

Regularising costs reconstruction: the KL term pulls every code towards the origin and keeps
noise on it, so the VAE's decoder sees blurred codes and reconstructs worse than the
autoencoder, which places each code wherever it decodes best. The demo prints -log p(x | z =
mu(x)) on training and test images for all three models, mean ± sd over --seeds, and the gap
between the VAE and the autoencoder in units of the larger sd. The claim needs training: after 5
epochs the autoencoder (which moves its codes far from the origin, and so from where Adam's
first steps leave them) still reconstructs worse than the VAE; 15 epochs on the 7,200 training
images of the bundled MNIST split are enough for the order to settle (docs/story.md has
the numbers and the measured time: about 2.7 minutes of CPU time; ``--seeds 0`` for a third).

It writes latent_spaces.png to --out: the posterior means of the test images (first seed), side
by side.
"""

import sys

import numpy as np

import _common
from npvae import VAE
from npvae.study import evaluate
from npvae.run import data
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
    p = _common.parser(__doc__.splitlines()[0], epochs=15, latent=2,
                       out="figures/latent_spaces/{dataset}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="train the three models once per seed (weights, batches, noise)")
    return p


def reconstruction(model, x):
    """-log p(x | z = mu(x)) per example, mean over x (nats): the VAE's loss at eps = 0 and
    beta = 0, whatever the subclass trains on."""
    zeros = np.zeros((len(x), model.latent_dim), dtype=model.dtype)  # (N, Z): z = mu exactly
    return VAE.loss_and_grads(model, x, eps=zeros, beta=0.0)[2]["recon"]


def measure(model, x_train, x_test):
    """The reconstruction at z = mu(x) on training and test images, and the test KL (None for
    the autoencoder, which has no q(z|x) to speak of)."""
    return {"train": float(reconstruction(model, x_train)),
            "test": float(reconstruction(model, x_test)),
            "KL": (None if isinstance(model, Autoencoder)
                   else float(evaluate.kl_per_dimension(model, x_test).sum()))}


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    x_train_bits = data.binarize(x_train, np.random.default_rng([args.seed, 5]))  # fixed bits
    models = [("reconstruction only (autoencoder)", Autoencoder), ("KL only", KLOnly),
              ("full ELBO (VAE)", VAE)]
    results = {name: [] for name, _ in models}
    panels = []
    for seed in args.seeds:
        for name, cls in models:
            print(f"--- seed {seed}: {name}")
            model = cls(784, hidden_dims=tuple(args.hidden), latent_dim=args.latent, seed=seed)
            _common.train(model, args, x_train, x_val, np.random.default_rng([seed, 3]))
            results[name].append(measure(model, x_train_bits, x_test))
            if seed == args.seeds[0]:
                mu, _ = model.encode(d.x_test)  # (N, 2)
                panels.append((name, mu, d.y_test))

    print(f"\n-log p(x | z = mu(x)) in nats per image, mean ± sd over {len(args.seeds)} "
          f"seed{'s' if len(args.seeds) > 1 else ''} ({args.epochs} epochs)")
    print(f"{'trained with':36s} {'training':>16s} {'test':>16s} {'KL (test)':>14s}")
    summary = {}
    for name, runs in results.items():
        summary[name] = {key: _mean_sd([r[key] for r in runs]) for key in ("train", "test")}
        kl = [r["KL"] for r in runs]
        summary[name]["KL"] = None if kl[0] is None else _mean_sd(kl)
        cells = [_fmt(summary[name][key]) for key in ("train", "test", "KL")]
        print(f"{name:36s} {cells[0]:>16s} {cells[1]:>16s} {cells[2]:>14s}")
    ae, vae = summary[models[0][0]], summary[models[2][0]]
    for split in ("train", "test"):
        gap = vae[split][0] - ae[split][0]
        spread = max(ae[split][1], vae[split][1], 1e-12)
        print(f"the KL's price in reconstruction ({split}): VAE − autoencoder = {gap:.2f} nats "
              f"= {gap / spread:.1f} × the larger sd")
    context = plots.run_label(args.dataset, args.epochs, args.latent)
    fig = plots.latent_spaces(panels, args.dataset, context)
    _common.save_figures({"latent_spaces": fig}, args.out)
    return {"panels": panels, "per_seed": results, "summary": summary}


def _mean_sd(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _fmt(mean_sd):
    return "—" if mean_sd is None else f"{mean_sd[0]:.2f} ± {mean_sd[1]:.2f}"


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
