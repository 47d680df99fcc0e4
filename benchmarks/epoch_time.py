"""Seconds per training epoch, against the matrix products the epoch cannot avoid.

    python benchmarks/epoch_time.py              # full run: 3 epochs per row, a few minutes
    python benchmarks/epoch_time.py --quick      # smoke run: 1 epoch of 10,000 examples

It trains the standard model (784-400-20, ReLU, Bernoulli, Adam lr 1e-3, batch 128, float32)
with ``npvae.train`` for a few epochs on 60,000 MNIST-shaped examples: MNIST train if its files
are found, else Fashion-MNIST train, else random binary pixels. After each training epoch (in
a ``train`` hook, outside the epoch's clock) it times the matmul-only epoch: the same sequence
of matrix products, with the same shapes and operand layouts (``dy @ W.T``, ``x.T @ dy``), for
the same batches, and nothing else:

    forward    x @ W_enc.i ...,  h @ W_mu,  h @ W_logvar,  z @ W_dec.i ...,  h_d @ W_out
    backward   for each dense layer, last first: dx = dy @ Wᵀ, then dW = xᵀ @ dy
               (no dx for the first encoder layer, whose input is the data: the model skips it)

On a machine shared with other jobs, run it with OPENBLAS_NUM_THREADS=1 and read the CPU-time
columns: two BLAS threads that must meet at every product stall whenever one is descheduled.

The ratio epoch / matmul-only is the cost of everything else: elementwise work, Adam, the
shuffle, train()'s checks, Python. Every row trains with the fused kernels (``fused=True``,
npvae.train's default) except "textbook", the standard model with the textbook forms of the
Bernoulli NLL and of Adam (``fused=False``): the two forms of the one switch. The "bare loop"
row times a plain loop of ``loss_and_grads`` and ``Adam.step`` instead of ``npvae.train``. Rows report medians over the
epochs; the epoch and its matmul-only twin alternate, so a busy machine slows both alike.
Peak memory is the process's peak resident set size (``resource.getrusage(...).ru_maxrss``),
which includes the data set held in memory.
"""

import argparse
import ctypes
import os
import resource
import statistics
import sys
import time

import numpy as np

import npvae
from npvae.run import data
from npvae.core.batching import minibatches

N_EXAMPLES = 60_000
D = 784
ROWS = [  # label, hidden sizes, latent size, batch size, bare loop instead of train, fused
    ("standard", (400,), 20, 128, False, True),
    ("textbook", (400,), 20, 128, False, False),
    ("bare loop", (400,), 20, 128, True, True),
    ("batch 32", (400,), 20, 32, False, True),
    ("batch 512", (400,), 20, 512, False, True),
    ("deeper", (512, 256), 32, 128, False, True),
]


def load_data(n, rng):
    """(x, source): n MNIST-shaped float32 examples in [0, 1] and where they came from."""
    for name in ("mnist", "fashion-mnist"):
        try:
            x, _ = data.load_dataset(name, "train", download=False)
        except npvae.DataError:
            continue
        return x[:n], f"{name} train ({len(x)} images, first {n} used)"
    x = (rng.random((n, D), dtype=np.float32) < 0.5).astype(np.float32)
    return x, "random binary pixels (no MNIST or Fashion-MNIST train files found)"


def batches(n, batch_size):
    """The sizes of an epoch's batches; the last one may be short."""
    return [len(range(n)[index]) for _, index in minibatches(n, batch_size)]


def train_epoch(model, opt, x, batch_size, rng, fused=True, epoch=0):
    """One epoch of Adam on shuffled minibatches: the bare loop inside ``npvae.train``."""
    for _, index in minibatches(len(x), batch_size, seed=0, epoch=epoch):
        _, grads, _ = model.loss_and_grads(x[index], rng=rng, fused=fused)  # x[index] : (B, D)
        opt.step(grads)


def matmul_sequence(config, B, rng):
    """The (a, b) operand pairs of every product one training step computes, in order."""
    dt = np.dtype(config.dtype)

    def arr(*shape):
        return rng.standard_normal(shape, dtype=dt)

    D, Z, hidden = config.input_dim, config.latent_dim, config.hidden_dims
    enc = [(a, b) for a, b in zip((D, *hidden), hidden)]  # encoder trunk (fan_in, fan_out)
    heads = [(hidden[-1] if hidden else D, Z)] * 2  # mu and logvar
    dec_dims = (Z, *reversed(hidden))
    dec = [(a, b) for a, b in zip(dec_dims, dec_dims[1:])] + [(dec_dims[-1], D)]  # trunk, out
    layers = [(i, o, "enc", k) for k, (i, o) in enumerate(enc)]
    layers += [(i, o, "head", 0) for i, o in heads] + [(i, o, "dec", 0) for i, o in dec]

    pairs = [(arr(B, i), arr(i, o)) for i, o, _, _ in layers]  # forward: x @ W
    for i, o, part, k in reversed(layers):
        x, W, dy = arr(B, i), arr(i, o), arr(B, o)
        first_layer = part == "enc" and k == 0
        no_trunk = part == "head" and not hidden
        if not (first_layer or no_trunk):
            pairs.append((dy, W.T))  # dx = dy Wᵀ
        pairs.append((x.T, dy))  # dW = xᵀ dy
    return pairs


def matmul_epoch(sequences, sizes):
    """Run, for each batch of the epoch, its sequence of products and nothing else."""
    for B in sizes:
        for a, b in sequences[B]:
            a @ b


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def blas_threads():
    """OpenBLAS's thread count, read from the library numpy loaded (None if not found)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower()}
        for path in libs:
            lib = ctypes.CDLL(path)
            for fn in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                       "openblas_get_num_threads"):
                if hasattr(lib, fn):
                    return getattr(lib, fn)()
    except OSError:
        pass
    return None


def cpu_seconds():
    """CPU time of this process, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_epochs(model, x, batch_size, epochs, rng, bare, fused):
    """Wall and CPU seconds of each training epoch and of its matmul-only twin."""
    opt = npvae.Adam(model.params, lr=1e-3, fused=fused)
    sizes = batches(len(x), batch_size)
    sequences = {B: matmul_sequence(model.config, B, rng) for B in set(sizes)}
    # Warm-up: Adam's moment arrays, BLAS buffers, the allocator's free lists.
    train_epoch(model, opt, x[:20 * batch_size], batch_size, rng, fused)
    matmul_epoch(sequences, sizes[:20])

    t = {"epoch": [], "matmul": [], "epoch cpu": [], "matmul cpu": []}
    last_cpu = [cpu_seconds()]

    def matmul_hook(epoch, record, model):
        c0 = cpu_seconds()
        t["epoch cpu"].append(c0 - last_cpu[0])
        t0 = time.perf_counter()
        matmul_epoch(sequences, sizes)
        t["matmul"].append(time.perf_counter() - t0)
        last_cpu[0] = cpu_seconds()
        t["matmul cpu"].append(last_cpu[0] - c0)

    if bare:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            train_epoch(model, opt, x, batch_size, rng, fused, epoch)
            t["epoch"].append(time.perf_counter() - t0)
            matmul_hook(epoch, None, model)
    else:
        history = npvae.train(model, x, epochs=epochs, batch_size=batch_size, optimizer=opt,
                              rng=rng, verbose=False, hooks=[matmul_hook], fused=fused)
        t["epoch"] = [r["seconds"] for r in history]
    return {key: statistics.median(values) for key, values in t.items()}, t


def run_row(label, x, hidden, latent, batch_size, epochs, seed, bare=False, fused=True):
    rng = np.random.default_rng(seed)
    model = npvae.VAE(D, hidden_dims=hidden, latent_dim=latent, dtype=np.float32, seed=seed)
    med, all_times = time_epochs(model, x, batch_size, epochs, rng, bare, fused)
    for name, p in model.params.items():
        assert p.dtype == np.float32, f"{name} became {p.dtype}"
    arch = "-".join(str(d) for d in (D, *hidden, model.latent_dim))
    print(f"{label:<10} {arch:<15} {batch_size:>5} {med['epoch']:>8.2f} {med['matmul']:>8.2f} "
          f"{med['epoch'] / med['matmul']:>6.2f} {med['epoch cpu']:>8.2f} "
          f"{med['matmul cpu']:>8.2f} {med['epoch cpu'] / med['matmul cpu']:>6.2f} "
          f"{len(x) / med['epoch']:>9.0f} {peak_rss_mb():>7.0f}   "
          f"[epochs {' '.join(f'{v:.2f}' for v in all_times['epoch'])}; "
          f"matmul {' '.join(f'{v:.2f}' for v in all_times['matmul'])}]", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per row (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch of 10,000 examples per row: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs, n = (1, 10_000) if args.quick else (args.epochs, N_EXAMPLES)

    rng = np.random.default_rng(args.seed)
    x, source = load_data(n, rng)
    print(f"npvae {npvae.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    print(f"BLAS threads {blas_threads()} (OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}), cpus {os.cpu_count()}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"data: {source}; x {x.shape} {x.dtype}, {x.nbytes / 2**20:.0f} MB; "
          f"peak RSS after loading {peak_rss_mb():.0f} MB")
    print(f"{epochs} timed epoch(s) of {len(x)} examples per row, medians; Adam lr 1e-3, "
          f"ReLU, Bernoulli, float32")
    print("wall = seconds on the clock; cpu = CPU seconds of all the process's threads (robust to "
          "other jobs on a busy machine, when OPENBLAS_NUM_THREADS=1)")
    print("peak MB = process peak resident set size so far (resource.getrusage ru_maxrss)\n")
    print(f"{'row':<10} {'model':<15} {'batch':>5} {'epoch':>8} {'matmul':>8} {'ratio':>6} "
          f"{'ep cpu':>8} {'mm cpu':>8} {'ratio':>6} {'ex/s':>9} {'peak MB':>7}")
    for label, hidden, latent, batch_size, bare, fused in ROWS:
        run_row(label, x, hidden, latent, batch_size, epochs, args.seed, bare, fused)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
