"""A hierarchy of latents against one layer, for the same number of epochs.

    python demos/hierarchy.py                      # MNIST (the bundled split offline)
    python demos/hierarchy.py --dataset fashion-mnist --epochs 20

Deep latent-variable models stack latents: p(x, z₁, z₂) = p(x|z₁) p(z₁|z₂) p(z₂), so that the
prior of z₁ is itself learned, with q(z₁|x) q(z₂|z₁) inferring them bottom-up
(``npvae.HVAE``). The demo trains the standard VAE (784-400-20) and a hierarchical VAE
(784-400-20-10) for the same number of epochs each (--epochs; --seconds adds a wall-clock
cap, checked after each epoch, for a quick look: the epochs it reaches then depend on the
machine), then prints, on the test set, the ELBO,
the importance-weighted log p(x) (k samples), the KL each layer carries and its active units,
and writes hierarchy.png (prior samples of both).
"""

import sys
import time

import numpy as np

import _common
import npvae
from npvae.study import evaluate
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=40, out="figures/hierarchy/{dataset}")
    p.add_argument("--seconds", type=float, default=None,
                   help="also stop each model after this many seconds of training (None: "
                        "train for --epochs)")
    p.add_argument("--top", type=int, default=10, help="size Z₂ of the top latent layer")
    p.add_argument("--k", type=int, default=100, help="importance samples for log p(x)")
    p.add_argument("--n-ll", type=int, default=1000, help="test images for log p(x)")
    return p


def train_for(model, args, x_train, x_val, rng):
    """Train for --epochs, or until --seconds are spent if given (checked after each epoch):
    the history."""
    start = time.perf_counter()
    hooks = [] if args.seconds is None else [
        lambda e, r, m: time.perf_counter() - start > args.seconds]
    return _common.train(model, args, x_train, x_val, rng, verbose=False, hooks=hooks)


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    models = {
        f"VAE (Z = {args.latent})": _common.model_from_args(args),
        f"HVAE (Z₁ = {args.latent}, Z₂ = {args.top})": npvae.HVAE(
            784, tuple(args.hidden), (args.latent, args.top), seed=args.seed),
    }
    results = {}
    n_ll = min(args.n_ll, len(x_test))
    for name, model in models.items():
        history = train_for(model, args, x_train, x_val, np.random.default_rng([args.seed, 2]))
        test = evaluate.elbo(model, x_test, rng=np.random.default_rng([args.seed, 5]))
        log_p = evaluate.log_likelihood(model, x_test[:n_ll], k=args.k,
                                        rng=np.random.default_rng([args.seed, 6]))
        results[name] = {"epochs": len(history), "elbo": test["elbo"], "kl": test["kl"],
                         "log_px": float(log_p.mean())}
        seconds = sum(r["seconds"] for r in history)
        print(f"{name:28s} {len(history):3d} epochs in {seconds:.0f} s: test ELBO "
              f"{test['elbo']:8.2f}, log p(x) {log_p.mean():8.2f} (IWAE, k = {args.k}, "
              f"{n_ll} images), KL {test['kl']:.2f}")
    hvae = list(models.values())[1]
    kl1, kl2 = hvae.kl_per_layer(x_test[:1000], rng=np.random.default_rng([args.seed, 7]))
    active = [int((np.var(mu, axis=0) > evaluate.ACTIVE_THRESHOLD).sum())
              for mu, _ in hvae.encode_layers(x_test[:1000])]
    print(f"HVAE layers: KL z₁ {kl1:.2f} and z₂ {kl2:.2f} nats; active units z₁ {active[0]} of "
          f"{args.latent}, z₂ {active[1]} of {args.top}")
    results["layers"] = {"kl": (kl1, kl2), "active": active}
    context = plots.run_label(args.dataset, None, args.latent)
    _common.save_figures({"hierarchy": plots.samples_side_by_side(
        models, rng_seed=args.seed, context=context)}, args.out)
    return results


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
