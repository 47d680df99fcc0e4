"""Regularity: an autoencoder's latent space against a VAE's, in pictures and in numbers.

    python demos/regularity.py                          # MNIST (the bundled split offline)
    python demos/regularity.py --dataset fashion-mnist

Two models with the same layers (784-400-2, Bernoulli decoder), the same initial weights of
every layer they share, the same data and the same batches: a plain autoencoder
(``npvae.Autoencoder``, reconstruction only) and a VAE (reconstruction and KL). The figure shows
each in the same four views: the codes of the test images, decoded draws from N(0, I), a decoded
grid over the box the codes occupy, and straight paths between the codes of test images.

It prints the two properties the KL term buys, measured (``npvae.study.regularity``):
- completeness: the mean distance from decoded prior draws, and from the decoded grid, to the
  nearest training image (pixel space; lower means the decoded points look like data);
- continuity: the unevenness of the interpolation paths, the largest pixel change of a step
  over the mean step (1 is an even path; large means the path jumps).
And a third run shows why the KL is needed even with the noise kept: a VAE trained with β = 0
shrinks its encoder's σ towards 0, so that q(z|x) becomes a point and the VAE an autoencoder.

Writes regularity.png and sigma_collapse.png to --out.
"""

import sys

import numpy as np

import _common
import npvae
from npvae.run import data
from npvae.run import plots
from npvae.study import regularity
from npvae.core.batching import minibatches
from npvae.run.training import train_step


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10, latent=2,
                       out="figures/regularity/{dataset}")
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


def measure(name, model, x_train, x_test, x_a, x_b, seed):
    """The completeness and continuity numbers of one model, printed and returned."""
    z = regularity.codes(model, x_test)
    result = {
        "prior": regularity.prior_distances(model, x_train, 500,
                                            np.random.default_rng([seed, 10])).mean(),
        "grid": regularity.grid_distances(model, z, x_train).mean(),
        "recon": regularity.nearest_distances(model.reconstruct(x_test[:500]), x_train).mean(),
        "unevenness": regularity.unevenness(regularity.interpolation_steps(model, x_a, x_b)),
        "code_spread": float(np.abs(z).max()),
    }
    print(f"{name:12s} {result['prior']:12.2f} {result['grid']:12.2f} {result['recon']:12.2f}"
          f" {result['unevenness']:12.2f} {result['code_spread']:10.1f}")
    return result


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    ae, vae = build_models(args)
    for model in (ae, vae):  # the same batches and pixels: the same seed for each
        _common.train(model, args, x_train, None, np.random.default_rng([args.seed, 3]))
    pairs = np.random.default_rng([args.seed, 11]).permutation(len(x_test))[:40]
    x_a, x_b = x_test[pairs[:20]], x_test[pairs[20:]]
    reference = d.x_train  # grey training images, as the decoded means are grey
    print("\ndistances are to the nearest training image, in pixels (lower: looks like data)")
    print(f"{'model':12s} {'prior draws':>12s} {'grid':>12s} {'reconstr.':>12s} "
          f"{'unevenness':>12s} {'max |code|':>10s}")
    results = {name: measure(name, model, reference, x_test, x_a, x_b, args.seed)
               for name, model in (("autoencoder", ae), ("VAE", vae))}
    curves = {f"β = {beta:g}": sigma_curve(args, x_train, beta) for beta in (0.0, 1.0)}
    for label, (steps, sigmas) in curves.items():
        print(f"{label}: mean σ of q(z|x) {sigmas[0]:.3f} at step 0, {sigmas[-1]:.4f} at step "
              f"{steps[-1]}")
    context = plots.run_label(args.dataset, args.epochs, 2)
    _common.save_figures({
        "regularity": plots.regularity_views({"autoencoder": ae, "VAE": vae}, x_test[:2000],
                                             d.y_test[:2000], x_a[:4], x_b[:4], args.seed,
                                             args.dataset, context),
        "sigma_collapse": plots.sigma_collapse(curves, context),
    }, args.out)
    return {"measures": results, "sigma": {k: v[1] for k, v in curves.items()}}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
