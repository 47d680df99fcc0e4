"""Seconds per training epoch, epoch by epoch, with the machine it ran on and where a step goes.

    python benchmarks/epoch_time.py                 # 8 epochs of the standard rows (~8 minutes)
    python benchmarks/epoch_time.py --torch         # and the PyTorch twin in the same run
    python benchmarks/epoch_time.py --quick         # smoke run: 2 short epochs per row

The standard row (issue 26) is the model 784-400-20, ReLU, Bernoulli, Adam lr 1e-3, batch 128,
float32, on 60,000 examples: Fashion-MNIST train if its files are found (``--data-dir``, else
/usr/share/datasets/fashion-mnist, npvae's own data folder, or MNIST train), else random binary
pixels of the same shape. The report has four parts:

1. The machine: CPU model, NumPy's SIMD features (baseline and found at run time), the BLAS
   library, its kernel ("architecture", e.g. Haswell, Zen, SkylakeX) and thread count (through
   threadpoolctl if installed, ``pip install -e .[bench]``, else read from OpenBLAS by ctypes),
   and how much slower this CPU runs a few elementwise operations on subnormal floats.
2. One step of the standard model, taken apart (medians over many steps, milliseconds): the
   matrix products alone (the same shapes and operand layouts, ``dy @ W.T``, ``x.T @ dy``),
   ``loss_and_grads`` (whose elementwise work is the difference), the Bernoulli NLL alone, and
   Adam in both forms, with and without a subnormal flush at every step.
3. Every epoch's seconds, at least 8 epochs for the standard rows, so that a slow drift shows
   (issue 26: on an Intel Xeon, 2.55 s growing to 4.31 s by epoch 8 as Adam's moments decayed
   into subnormal floats). After each epoch the number of subnormal entries in the optimizer's
   state is printed. Rows: "standard" (``npvae.train``, the fused Adam, which flushes every
   ``optim.FLUSH_EVERY`` steps), "no flush" (the same with the flush switched off, to see what
   it is worth on this CPU), "textbook" (``fused=False``: the textbook Adam), "bare loop" (a
   plain loop of ``loss_and_grads`` and the fused ``Adam.step``, without ``npvae.train``'s
   checks), then batch 32, batch 512 and a deeper model for ``--other-epochs`` epochs.
   "drift" is the median of the last three epochs over the second epoch (1.00 = flat).
   After each epoch, outside its clock, the matmul-only epoch (the products of every step of
   the epoch, and nothing else) is timed, so that a busy machine slows both alike.
4. With ``--torch``: benchmarks/pytorch_epoch.py, the same model and loop in PyTorch, run in
   a subprocess right after the standard row, and the ratio npvae / PyTorch per epoch.

On a machine shared with other jobs, also run it with OPENBLAS_NUM_THREADS=1 and read the
CPU-time columns: two BLAS threads that must meet at every product stall whenever one is
descheduled. Peak memory is the process's peak resident set size (includes the data set).
"""

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import npvae
from npvae.core import distributions, optim
from npvae.core.batching import minibatches
from npvae.run import data

N_EXAMPLES = 60_000
D = 784
DATA_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/datasets/mnist")
NO_FLUSH = 10**12  # optim.FLUSH_EVERY that never comes: the flush switched off
ROWS = [  # label, hidden sizes, latent size, batch, bare loop instead of train, fused, flush
    ("standard", (400,), 20, 128, False, True, True),
    ("no flush", (400,), 20, 128, False, True, False),
    ("textbook", (400,), 20, 128, False, False, True),
    ("bare loop", (400,), 20, 128, True, True, True),
]
OTHER_ROWS = [
    ("batch 32", (400,), 20, 32, False, True, True),
    ("batch 512", (400,), 20, 512, False, True, True),
    ("deeper", (512, 256), 32, 128, False, True, True),
]


# --- the machine -------------------------------------------------------------------------------

def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def simd_features():
    """(baseline, found at run time beyond it) SIMD feature names of this NumPy build."""
    try:
        from numpy._core._multiarray_umath import (__cpu_baseline__, __cpu_dispatch__,
                                                    __cpu_features__)
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import (__cpu_baseline__, __cpu_dispatch__,
                                                   __cpu_features__)
    found = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    return list(__cpu_baseline__), found


def _openblas_call(suffix):
    """Call OpenBLAS's openblas_<suffix> in the library NumPy loaded (None if not found)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower()}
        for path in sorted(libs, key=lambda p: "numpy" not in p):  # NumPy's BLAS first
            lib = ctypes.CDLL(path)
            for fn in (f"scipy_openblas_{suffix}64_", f"openblas_{suffix}64_",
                       f"openblas_{suffix}"):
                if hasattr(lib, fn):
                    return getattr(lib, fn)
    except OSError:
        pass
    return None


def blas_threads():
    """OpenBLAS's thread count, read from the library numpy loaded (None if not found)."""
    fn = _openblas_call("get_num_threads")
    return fn() if fn else None


def blas_info():
    """One line on the BLAS in use: library, version, kernel and threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        # NumPy's BLAS first (SciPy may load a second one, which npvae's products do not use)
        infos = sorted((i for i in threadpool_info() if i.get("user_api") == "blas"),
                       key=lambda i: "numpy" not in i.get("filepath", ""))
        if infos:
            return "; ".join(
                f"{i.get('internal_api')} {i.get('version')}, kernel {i.get('architecture')}, "
                f"{i.get('num_threads')} threads ({Path(i.get('filepath', '?')).parent.name})"
                for i in infos) + " (threadpoolctl)"
    fn = _openblas_call("get_corename")
    if fn is None:
        return "unknown (not OpenBLAS, and threadpoolctl is not installed)"
    fn.restype = ctypes.c_char_p
    return f"OpenBLAS, kernel {fn().decode()}, {blas_threads()} threads (read by ctypes)"


def machine_lines():
    baseline, found = simd_features()
    return [f"CPU: {cpu_model()}, {os.cpu_count()} logical cpus; load average "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}",
            f"npvae {npvae.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}",
            f"NumPy SIMD: baseline {' '.join(baseline)}; found {' '.join(found) or 'none'}",
            f"BLAS: {blas_info()} (OPENBLAS_NUM_THREADS="
            f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})",
            f"optimizer flush of subnormal state every {optim.FLUSH_EVERY} steps"]


# --- data and small tools ----------------------------------------------------------------------

def load_data(n, rng, data_dir=None):
    """(x, source): n MNIST-shaped float32 examples in [0, 1] and where they came from."""
    dirs = [data_dir] if data_dir else [*DATA_DIRS, None]  # None: npvae's own data folder
    for name in ("fashion-mnist", "mnist"):
        for folder in dirs:
            if folder is not None and name not in str(folder) and not data_dir:
                continue
            try:
                x, _ = data.load_dataset(name, "train", data_dir=folder, download=False)
            except npvae.DataError:
                continue
            return x[:n], f"{name} train from {folder or 'npvae data folder'} ({n} used)"
    x = (rng.random((n, D), dtype=np.float32) < 0.5).astype(np.float32)
    return x, "random binary pixels (no Fashion-MNIST or MNIST train files found)"


def batches(n, batch_size):
    """The sizes of an epoch's batches; the last one may be short."""
    return [len(range(n)[index]) for _, index in minibatches(n, batch_size)]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_seconds():
    """CPU time of this process, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def subnormals(arrays):
    """How many entries are nonzero and below their dtype's smallest normal magnitude."""
    return sum(int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).smallest_normal)))
               for a in arrays)


def median_ms(fn, repeats):
    """Milliseconds of fn(): (wall, CPU of the process), each the median of ``repeats`` calls.
    With one BLAS thread the CPU time is the one to read on a busy machine."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


class flush_every:
    """Context manager: optim.FLUSH_EVERY set to ``steps`` inside, restored after."""

    def __init__(self, steps):
        self.steps = steps

    def __enter__(self):
        self.saved, optim.FLUSH_EVERY = optim.FLUSH_EVERY, self.steps

    def __exit__(self, *exc):
        optim.FLUSH_EVERY = self.saved


def subnormal_penalty(n=652_824, repeats=30):
    """Slowdown of elementwise float32 work on subnormal operands (or results) on this CPU.

    For each operation, the CPU-time median over ``repeats`` passes over n floats (the standard
    model's parameter count) with subnormal data, over the same with normal data:
    {name: (normal ms, subnormal ms)}. Issue 26 measured ``a *= 0.9`` 20 times slower on
    subnormal ``a`` on an Intel Xeon."""
    out = np.empty(n, np.float32)
    cases = {  # name: (operation, normal input, subnormal input (or one with subnormal results))
        "a *= 0.9": (lambda a: np.multiply(a, np.float32(0.9), out=out), 1e-3, 1e-40),
        "a + a": (lambda a: np.add(a, a, out=out), 1e-3, 1e-40),
        "sqrt(a)": (lambda a: np.sqrt(a, out=out), 1e-3, 1e-40),
        "a / (a + 1e-8)": (lambda a: np.divide(a, a + np.float32(1e-8), out=out), 1e-3, 1e-40),
        "exp(a), result subnormal": (lambda a: np.exp(a, out=out), -5.0, -95.0),
    }
    result = {}
    for name, (op, normal, subnormal) in cases.items():
        result[name] = tuple(median_ms(lambda: op(a), repeats)[1] for a in (
            np.full(n, normal, np.float32), np.full(n, subnormal, np.float32)))
    return result


# --- the matmul-only twin ----------------------------------------------------------------------

def matmul_sequence(config, B, rng):
    """The (a, b) operand pairs of every product one training step computes, in order:

    forward    x @ W_enc.i ...,  h @ W_mu,  h @ W_logvar,  z @ W_dec.i ...,  h_d @ W_out
    backward   for each dense layer, last first: dx = dy @ Wᵀ, then dW = xᵀ @ dy
               (no dx for the first encoder layer, whose input is the data: the model skips it)
    """
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


# --- 2. one step taken apart -------------------------------------------------------------------

def step_breakdown(x, seed, repeats):
    """Milliseconds of each part of one step of the standard model, medians over ``repeats``."""
    rng = np.random.default_rng(seed)
    model = npvae.VAE(D, hidden_dims=(400,), latent_dim=20, dtype=np.float32, seed=seed)
    xb = x[:128]  # (B, D)
    products = matmul_sequence(model.config, 128, rng)
    ms = {"products alone": median_ms(lambda: [a @ b for a, b in products], repeats)}
    ms["loss_and_grads"] = median_ms(lambda: model.loss_and_grads(xb, rng=rng), repeats)
    ms["loss elementwise (the difference)"] = tuple(
        a - b for a, b in zip(ms["loss_and_grads"], ms["products alone"]))
    logits = rng.standard_normal((128, D), dtype=np.float32) * 4  # (B, D)
    ms["Bernoulli NLL + gradient alone"] = median_ms(
        lambda: distributions.bernoulli_nll(logits, xb), repeats)
    _, grads, _ = model.loss_and_grads(xb, rng=rng)
    for fused, name in ((True, "fused"), (False, "textbook")):
        for every, when in ((optim.FLUSH_EVERY, f"flush every {optim.FLUSH_EVERY}"),
                            (1, "flush every step"), (NO_FLUSH, "no flush")):
            opt = npvae.Adam(model.params, lr=1e-9, fused=fused)  # a tiny lr: params barely move
            with flush_every(every):
                opt.step(grads)
                ms[f"Adam {name}, {when}"] = median_ms(lambda: opt.step(grads), repeats)
    return ms


# --- 3. epochs ---------------------------------------------------------------------------------

def train_epoch(model, opt, x, batch_size, rng, epoch=0):
    """One epoch of minibatch steps: the bare loop inside ``npvae.train``."""
    for _, index in minibatches(len(x), batch_size, seed=0, epoch=epoch):
        _, grads, _ = model.loss_and_grads(x[index], rng=rng)  # x[index] : (B, D)
        opt.step(grads)


def time_epochs(model, x, batch_size, epochs, rng, bare, fused):
    """Per epoch: wall and CPU seconds, its matmul-only twin, and the optimizer's subnormals."""
    opt = npvae.Adam(model.params, lr=1e-3, fused=fused)
    sizes = batches(len(x), batch_size)
    sequences = {B: matmul_sequence(model.config, B, rng) for B in set(sizes)}
    # Warm-up on a copy (Adam's moment arrays, BLAS buffers, the allocator's free lists), so
    # that the timed run starts from the model as initialised.
    warm = npvae.VAE.from_config(model.config, seed=0)
    train_epoch(warm, npvae.Adam(warm.params, fused=fused), x[:20 * batch_size], batch_size, rng)
    matmul_epoch(sequences, sizes[:20])

    t = {"epoch": [], "matmul": [], "epoch cpu": [], "matmul cpu": [], "subnormal": []}
    last_cpu = [cpu_seconds()]

    def matmul_hook(epoch, record, model):
        c0 = cpu_seconds()
        t["epoch cpu"].append(c0 - last_cpu[0])
        t["subnormal"].append(subnormals(a for k, a in opt.state_dict().items() if k != "t"))
        t0 = time.perf_counter()
        matmul_epoch(sequences, sizes)
        t["matmul"].append(time.perf_counter() - t0)
        last_cpu[0] = cpu_seconds()
        t["matmul cpu"].append(last_cpu[0] - c0)

    if bare:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            train_epoch(model, opt, x, batch_size, rng, epoch)
            t["epoch"].append(time.perf_counter() - t0)
            matmul_hook(epoch, None, model)
    else:
        history = npvae.train(model, x, epochs=epochs, batch_size=batch_size, optimizer=opt,
                              rng=rng, verbose=False, hooks=[matmul_hook], fused=fused)
        t["epoch"] = [r["seconds"] for r in history]
    return t


def drift(epochs):
    """Median of the last three epochs over the second (the first warms caches up)."""
    return statistics.median(epochs[-3:]) / epochs[1] if len(epochs) >= 4 else float("nan")


def run_row(row, x, epochs, seed):
    label, hidden, latent, batch_size, bare, fused, flush = row
    rng = np.random.default_rng(seed)
    model = npvae.VAE(D, hidden_dims=hidden, latent_dim=latent, dtype=np.float32, seed=seed)
    with flush_every(optim.FLUSH_EVERY if flush else NO_FLUSH):
        t = time_epochs(model, x, batch_size, epochs, rng, bare, fused)
    for name, p in model.params.items():
        assert p.dtype == np.float32, f"{name} became {p.dtype}"
    med = {key: statistics.median(values) for key, values in t.items()}
    arch = "-".join(str(d) for d in (D, *hidden, model.latent_dim))
    print(f"{label:<10} {arch:<15} {batch_size:>5} {med['epoch']:>7.2f} {med['matmul']:>7.2f} "
          f"{med['epoch'] / med['matmul']:>6.2f} {med['epoch cpu']:>7.2f} "
          f"{med['epoch cpu'] / med['matmul cpu']:>6.2f} {drift(t['epoch']):>6.2f} "
          f"{drift(t['epoch cpu']):>6.2f} "
          f"{len(x) / med['epoch']:>8.0f} {peak_rss_mb():>7.0f}", flush=True)
    print(f"    epoch s    {' '.join(f'{v:6.2f}' for v in t['epoch'])}")
    print(f"    cpu s      {' '.join(f'{v:6.2f}' for v in t['epoch cpu'])}")
    print(f"    matmul s   {' '.join(f'{v:6.2f}' for v in t['matmul'])}")
    print(f"    subnormal  {' '.join(f'{v:6d}' for v in t['subnormal'])}   "
          f"(entries of the optimizer's state after each epoch)", flush=True)
    return t


def run_torch(data_dir, epochs, seed, quick):
    """benchmarks/pytorch_epoch.py in a subprocess: its per-epoch seconds, or None."""
    script = Path(__file__).with_name("pytorch_epoch.py")
    cmd = [sys.executable, str(script), "--epochs", str(epochs), "--seed", str(seed), "--json"]
    cmd += ["--quick"] if quick else []
    cmd += ["--threads", str(blas_threads())] if blas_threads() else []
    cmd += ["--data-dir", data_dir] if data_dir else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"PyTorch twin failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'PyTorch':<10} {'784-400-20':<15} {128:>5} "
          f"{statistics.median(result['epochs']):>7.2f}   (torch {result['torch']}, "
          f"{result['threads']} threads) drift {drift(result['epochs']):.2f}")
    print(f"    epoch s    {' '.join(f'{v:6.2f}' for v in result['epochs'])}")
    print(f"    cpu s      {' '.join(f'{v:6.2f}' for v in result['cpu'])}", flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8,
                        help="timed epochs of the standard rows (default 8)")
    parser.add_argument("--other-epochs", type=int, default=3,
                        help="timed epochs of the batch 32, batch 512 and deeper rows (default 3;"
                             " 0 skips them)")
    parser.add_argument("--rows", default=None,
                        help="comma-separated labels of the rows to run (default: all)")
    parser.add_argument("--torch", action="store_true",
                        help="also time benchmarks/pytorch_epoch.py (needs torch) in this run")
    parser.add_argument("--data-dir", default=None, help="folder with the train files")
    parser.add_argument("--steps", type=int, default=300,
                        help="steps per median of the step breakdown (default 300)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 epochs of 5,000 examples per row, 20 steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = 5_000 if args.quick else N_EXAMPLES
    epochs = 2 if args.quick else max(args.epochs, 2)
    other_epochs = min(args.other_epochs, epochs)
    steps = 20 if args.quick else args.steps

    rng = np.random.default_rng(args.seed)
    x, source = load_data(n, rng, args.data_dir)
    print("\n".join(machine_lines()))
    print(f"data: {source}; x {x.shape} {x.dtype}, {x.nbytes / 2**20:.0f} MB")

    print("\nSubnormal float32 operands on this CPU: CPU ms per pass over 652,824 floats")
    for name, (normal, subnormal) in subnormal_penalty().items():
        print(f"    {name:<28} normal {normal:6.3f}   subnormal {subnormal:6.3f}   "
              f"×{subnormal / normal:.1f}")

    print(f"\nOne step of 784-400-20, batch 128, float32, ms (medians of {steps} steps):")
    print(f"    {'':<40} {'wall':>7} {'CPU':>7}")
    for name, (wall, cpu) in step_breakdown(x, args.seed, steps).items():
        print(f"    {name:<40} {wall:7.3f} {cpu:7.3f}")

    print(f"\nEpochs of {len(x)} examples; Adam lr 1e-3, ReLU, Bernoulli, float32. Columns: "
          f"median epoch s, its matmul-only twin s, ratio; CPU s and CPU ratio; drift (last 3 "
          f"over epoch 2) in wall and in CPU seconds; examples/s; peak MB\n")
    print(f"{'row':<10} {'model':<15} {'batch':>5} {'epoch':>7} {'matmul':>7} {'ratio':>6} "
          f"{'ep cpu':>7} {'ratio':>6} {'drift':>6} {'cpu dr':>6} {'ex/s':>8} {'peak MB':>7}")
    wanted = set(args.rows.split(",")) if args.rows else None
    results = {}
    for row in ROWS + (OTHER_ROWS if other_epochs else []):
        if wanted and row[0] not in wanted:
            continue
        results[row[0]] = run_row(row, x, epochs if row in ROWS else other_epochs, args.seed)
        if row[0] == "standard" and args.torch:
            results["PyTorch"] = run_torch(args.data_dir, epochs, args.seed, args.quick)
    if results.get("PyTorch") and "standard" in results:
        ours, theirs = results["standard"], results["PyTorch"]
        for clock, a, b in (("wall", "epoch", "epochs"), ("CPU", "epoch cpu", "cpu")):
            print(f"\nnpvae / PyTorch per epoch, {clock} seconds (standard row, medians of "
                  f"epochs 2-{epochs}): "
                  f"{statistics.median(ours[a][1:]) / statistics.median(theirs[b][1:]):.2f}",
                  end="")
        print()
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
