"""Where subnormal floats arise in a real training run and evaluation (issue 26), counted.

    python benchmarks/subnormal_census.py              # 8 epochs of the standard model
    python benchmarks/subnormal_census.py --epochs 2   # a shorter look

Subnormal numbers (magnitudes below np.finfo(dtype).smallest_normal: 1.2e-38 in float32,
2.2e-308 in float64) make arithmetic slow on many CPUs. This trains the standard model
(784-400-20, Bernoulli, batch 128, float32, Adam lr 1e-3, a plain loop of ``loss_and_grads``
and the fused ``Adam.step``) on Fashion-MNIST train (else MNIST, else random binary pixels)
and after each epoch counts, on 1,000 fixed training examples and one fresh z each:

- the optimizer's state (m and v), and the parameters;
- the gradients of one batch;
- exp(-|logits|), which the Bernoulli NLL and its gradient sigmoid(logits) - x compute: it is
  subnormal for 87.3 < |logits| < 103.3 in float32 (and exactly 0 beyond);
- σ = exp(logvar / 2) and exp(logvar) of the encoder (the clamp to [-30, 30] keeps them normal);

and at the end, for the importance-weighted log-likelihood (npvae.study.evaluate, k samples
of 20 test images): the normalised weights exp(log w - max log w), in float64 as
evaluate.log_likelihood computes them, and in float32 as the IWAE training objective does.
"""

import argparse
import math
import time

import numpy as np

import npvae
from epoch_time import cpu_model, load_data  # benchmarks/ is on sys.path when run as a script
from npvae.core.batching import minibatches
from npvae.run import data


def count(a, dtype=None):
    """(subnormal, exact zero) entries of a, judged in ``dtype`` (default: a's own)."""
    a = np.asarray(a, dtype=dtype)
    tiny = np.finfo(a.dtype).smallest_normal
    return int(np.count_nonzero((a != 0) & (np.abs(a) < tiny))), int(np.count_nonzero(a == 0))


def forward(params, x, eps):
    """The standard model's forward by hand: (logits (N, D), logvar (N, Z), sigma (N, Z))."""
    h = np.maximum(x @ params["encoder.0.W"] + params["encoder.0.b"], 0)  # (N, H)
    mu = h @ params["mu.W"] + params["mu.b"]  # (N, Z)
    logvar = np.clip(h @ params["logvar.W"] + params["logvar.b"], -30, 30)  # (N, Z)
    sigma = np.exp(0.5 * logvar)  # (N, Z)
    hd = np.maximum((mu + sigma * eps) @ params["decoder.0.W"] + params["decoder.0.b"], 0)
    return hd @ params["out.W"] + params["out.b"], logvar, sigma  # (N, D)


def census(model, opt, x, grads, rng):
    eps = rng.standard_normal((len(x), model.latent_dim), dtype=np.float32)  # (N, Z)
    logits, logvar, sigma = forward(model.params, x, eps)
    e = np.exp(-np.abs(logits))  # (N, D), as the Bernoulli NLL computes it
    state = [a for k, a in opt.state_dict().items() if k != "t"]
    return {
        "adam state": sum(count(a)[0] for a in state),
        "params": sum(count(a)[0] for a in model.params.values()),
        "grads": sum(count(a)[0] for a in grads.values()),
        "exp(-|logits|)": count(e)[0],
        "exp(-|l|) = 0": count(e)[1],
        "min logit": float(logits.min()),
        "sigma, exp(logvar)": count(sigma)[0] + count(np.exp(logvar))[0],
        "min logvar": float(logvar.min()),
    }


def iwae_weights(model, x, k, rng):
    """Counts of subnormal normalised importance weights for k samples of each example."""
    eps = rng.standard_normal((k, len(x), model.latent_dim), dtype=np.float32)  # (K, B, Z)
    log_w = np.concatenate([model.log_weights(x, eps[i:i + 500])
                            for i in range(0, k, 500)])  # (K, B)
    shifted = log_w.astype(np.float64) - log_w.max(axis=0)  # (K, B), as logsumexp does
    w64 = np.exp(shifted)
    w32 = np.exp(shifted.astype(np.float32))
    return {"k·B weights": log_w.size, "float64 subnormal": count(w64)[0],
            "float64 zero": count(w64)[1], "float32 subnormal": count(w32)[0],
            "float32 zero": count(w32)[1], "spread of log w (nats)": float(-shifted.min())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x, source = load_data(60_000, rng, args.data_dir)
    print(f"CPU: {cpu_model()}; numpy {np.__version__}; data: {source}")
    model = npvae.VAE(784, hidden_dims=(400,), latent_dim=20, dtype=np.float32, seed=args.seed)
    opt = npvae.Adam(model.params, lr=1e-3, fused=True)
    probe = x[:1000]
    header = None
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        for _, index in minibatches(len(x), 128, seed=0, epoch=epoch):
            _, grads, _ = model.loss_and_grads(x[index], rng=rng)
            opt.step(grads)
        seconds = time.perf_counter() - t0
        row = census(model, opt, probe, grads, np.random.default_rng(epoch))
        if header is None:
            header = list(row)
            print(f"{'epoch':>5} {'s':>6} " + " ".join(f"{h:>18}" for h in header))
        print(f"{epoch + 1:>5} {seconds:6.2f} " + " ".join(
            f"{row[h]:>18.2f}" if isinstance(row[h], float) else f"{row[h]:>18d}"
            for h in header), flush=True)
    try:
        x_test, _ = data.load_dataset("fashion-mnist", "test", download=False,
                                      data_dir=args.data_dir or "/usr/share/datasets/fashion-mnist")
    except npvae.DataError:
        x_test = x[-20:]
    print(f"\nimportance weights, k = {args.k}, 20 test images, trained model:")
    for key, value in iwae_weights(model, x_test[:20], args.k, rng).items():
        print(f"    {key:<24} {value}")
    untrained = npvae.VAE(784, hidden_dims=(400,), latent_dim=20, dtype=np.float32, seed=1)
    print(f"importance weights, k = {args.k}, 20 test images, untrained model:")
    for key, value in iwae_weights(untrained, x_test[:20], args.k, rng).items():
        print(f"    {key:<24} {value}")
    print(f"(float32 weights are subnormal below exp({math.log(np.finfo(np.float32).tiny):.1f}), "
          f"float64 ones below exp({math.log(np.finfo(np.float64).tiny):.1f}))")


if __name__ == "__main__":
    main()
