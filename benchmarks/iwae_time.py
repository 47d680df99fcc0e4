"""Seconds for the importance-weighted log-likelihood, k = 5000, over the 10,000 test images.

    python benchmarks/iwae_time.py                # all 10,000 images (many minutes)
    python benchmarks/iwae_time.py --n 200        # 200 images, extrapolated to 10,000
    python benchmarks/iwae_time.py --checkpoint runs/mnist/checkpoint.npz

It times ``npvae.study.evaluate.log_likelihood(model, x, k)`` on the MNIST test split (else
Fashion-MNIST test, else random binary pixels) with the standard model (784-400-20, Bernoulli,
float32), untrained unless a checkpoint is given: the work does not depend on the weights.
It also times the matmul-only twin: the products of the same chunks, with the same shapes
(encoder x @ W_enc, h @ W_mu, h @ W_logvar; decoder z @ W_dec, h @ W_out on the chunk's
examples × samples rows), and nothing else, over the first chunks, scaled to all of them.
On a machine shared with other jobs, run it with OPENBLAS_NUM_THREADS=1 and read the CPU rows.
"""

import argparse
import math
import os
import sys
import time

import numpy as np

import npvae
from epoch_time import cpu_seconds, peak_rss_mb  # benchmarks/ is on sys.path when run as a script
from npvae.run import data
from npvae.study import evaluate

N_TEST, K = 10_000, 5000


def load_test(data_dir, rng):
    for name in ("mnist", "fashion-mnist"):
        try:
            x, _ = data.load_dataset(name, "test", data_dir=data_dir, download=False)
        except npvae.DataError:
            continue
        return x, f"{name} test"
    x = (rng.random((N_TEST, 784), dtype=np.float32) < 0.5).astype(np.float32)
    return x, "random binary pixels (no MNIST or Fashion-MNIST test files found)"


def chunk_shapes(n, k, max_rows):
    """(examples, samples) of each chunk, as evaluate.log_likelihood splits the work."""
    n_examples = max(1, max_rows // k)
    n_samples = min(k, max_rows)
    return [(min(n_examples, n - s), min(n_samples, k - t))
            for s in range(0, n, n_examples) for t in range(0, k, n_samples)]


def matmul_chunk(model, B, L, rng):
    """The (a, b) operand pairs of one chunk's forward products."""
    c, dt = model.config, model.dtype
    enc, dec = (c.input_dim, *c.hidden_dims), (c.latent_dim, *reversed(c.hidden_dims))
    pairs = [(rng.standard_normal((B, i), dtype=dt), rng.standard_normal((i, o), dtype=dt))
             for i, o in zip(enc, enc[1:])]
    pairs += [(rng.standard_normal((B, enc[-1]), dtype=dt),
               rng.standard_normal((enc[-1], c.latent_dim), dtype=dt))] * 2
    pairs += [(rng.standard_normal((B * L, i), dtype=dt), rng.standard_normal((i, o), dtype=dt))
              for i, o in zip(dec, (*dec[1:], c.input_dim))]
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=N_TEST, help="test images (default 10000)")
    parser.add_argument("--k", type=int, default=K, help="importance samples (default 5000)")
    parser.add_argument("--checkpoint", help="a trained model's checkpoint (npvae.load)")
    parser.add_argument("--data-dir", help="folder with the MNIST files (as npvae --data-dir)")
    parser.add_argument("--max-rows", type=int, default=evaluate.MAX_ROWS,
                        help="decoder rows per chunk (default evaluate.MAX_ROWS)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x, source = load_test(args.data_dir, rng)
    x = x[:args.n]
    model = npvae.load(args.checkpoint) if args.checkpoint else npvae.VAE(784, seed=args.seed)
    print(f"npvae {npvae.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}; "
          f"cpus {os.cpu_count()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"data: {source}, {len(x)} images; model {model.config.to_dict()}; "
          f"{'trained: ' + args.checkpoint if args.checkpoint else 'untrained'}")

    chunks = chunk_shapes(len(x), args.k, args.max_rows)
    print(f"k = {args.k}, max_rows = {args.max_rows}: {len(chunks)} chunks of "
          f"(examples, samples) = {chunks[0]}")

    t0, c0 = time.perf_counter(), cpu_seconds()
    log_p = evaluate.log_likelihood(model, x, k=args.k, rng=np.random.default_rng(args.seed),
                                    max_rows=args.max_rows)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    assert log_p.shape == (len(x),) and np.all(np.isfinite(log_p))

    sample = chunks[:20]
    pairs = {shape: matmul_chunk(model, *shape, rng) for shape in set(sample)}
    for a, b in pairs[sample[0]]:  # warm-up
        a @ b
    t0, c0 = time.perf_counter(), cpu_seconds()
    for shape in sample:
        for a, b in pairs[shape]:
            a @ b
    matmul = (time.perf_counter() - t0) * len(chunks) / len(sample)
    matmul_cpu = (cpu_seconds() - c0) * len(chunks) / len(sample)

    scale = N_TEST / len(x)
    print(f"\nlog p(x) mean {log_p.mean():.2f} nats over {len(x)} images")
    print(f"{'':28s}{'measured':>10s}{'for 10,000':>12s}")
    print(f"{'log_likelihood seconds':28s}{seconds:>10.1f}{seconds * scale:>12.0f}")
    print(f"{'matmul-only seconds':28s}{matmul:>10.1f}{matmul * scale:>12.0f}")
    print(f"{'ratio':28s}{seconds / matmul:>10.2f}")
    print(f"{'log_likelihood CPU seconds':28s}{cpu:>10.1f}{cpu * scale:>12.0f}")
    print(f"{'matmul-only CPU seconds':28s}{matmul_cpu:>10.1f}{matmul_cpu * scale:>12.0f}")
    print(f"{'CPU ratio':28s}{cpu / matmul_cpu:>10.2f}")
    print(f"{'ms per image':28s}{1e3 * seconds / len(x):>10.1f}")
    print(f"peak RSS {peak_rss_mb():.0f} MB "
          f"(resource.getrusage ru_maxrss); load average after "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if math.isfinite(seconds * scale) and seconds * scale > 300:
        print("above the 5-minute target")


if __name__ == "__main__":
    main()
