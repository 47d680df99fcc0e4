"""Two versions of npvae trained in turn: is one slower than the other, beyond the noise?

    git worktree add /tmp/npvae-old f4f57fb        # any commit, as a folder holding npvae/
    python benchmarks/compare_trees.py /tmp/npvae-old .          # 8 pairs of 2 epochs
    python benchmarks/compare_trees.py OLD NEW --pairs 12 --epochs 3

Each run is a fresh process that imports the ``npvae/`` under one folder, loads the data and
trains the standard model (784-400-20, Bernoulli, Adam, batch 128, float32) through
``npvae.train`` for ``--epochs`` epochs. The runs alternate, OLD, NEW, OLD, NEW, ..., so a drift
of the machine's speed (this VM's epochs vary by up to 30 %) reaches both versions alike, and
NEW/OLD is taken pair by pair. Per run: the training's seconds per epoch (its own clock), and
the process's CPU seconds (import and data loading included) and peak memory, as the
operating system counts them for that process. The summary gives the median pair ratio and
its range: a median inside the range of the ratios says "no slower within noise", and only
then.

The data are the first ``--n`` (default 60,000) of Fashion-MNIST's training images (``--data``,
by default Debian's dataset-fashion-mnist), else as many random binary images of that shape.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

# The child: it imports npvae from PYTHONPATH, so it must not import this repository's modules.
CHILD = """
import gzip, json, resource, sys, time
import numpy as np
import npvae
path, epochs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if path:
    with gzip.open(path) as f:  # IDX: a 16-byte header, then uint8 pixels
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32)
    x = x[:n] / 255
else:
    x = (np.random.default_rng(0).random((n, 784)) < 0.3).astype(np.float32)
model = npvae.VAE(784, seed=0)
start = time.perf_counter()
npvae.train(model, x, epochs=epochs, batch_size=128, verbose=False)
epoch_s = (time.perf_counter() - start) / epochs
usage = resource.getrusage(resource.RUSAGE_SELF)  # the whole process: import, data, training
print(json.dumps({"npvae": npvae.__file__, "epoch_s": epoch_s,
                  "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_mb": usage.ru_maxrss / 1024}))  # ru_maxrss is in kB on Linux
"""


def run(tree, data, epochs, n=60_000):
    """One fresh process training with the npvae under ``tree``: its figures, as a dict."""
    tree = Path(tree).resolve()
    data = Path(data).resolve() if data else ""
    # ``python -c`` puts its working folder first on sys.path, ahead of PYTHONPATH: run it in
    # the tree itself, or a run started from another checkout would import that one.
    done = subprocess.run([sys.executable, "-c", CHILD, str(data), str(epochs), str(n)],
                          env=dict(os.environ, PYTHONPATH=str(tree)), cwd=tree,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the run with {tree} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(figures.pop("npvae")).resolve() != tree / "npvae" / "__init__.py":
        raise SystemExit(f"the run meant for {tree} imported another npvae: {done.stdout}")
    return figures


def summary(pairs):
    """Lines: the medians of each figure for OLD and NEW, and NEW/OLD pair by pair."""
    lines = []
    for key, unit in (("epoch_s", "training s per epoch"), ("cpu_s", "process CPU s"),
                      ("peak_mb", "process peak MB")):
        old = [o[key] for o, _ in pairs]
        new = [n[key] for _, n in pairs]
        ratios = sorted(n / o for o, n in zip(old, new))
        lines.append(f"{unit:22s} OLD {statistics.median(old):9.3f}   NEW "
                     f"{statistics.median(new):9.3f}   NEW/OLD median "
                     f"{statistics.median(ratios):.3f} (pairs {ratios[0]:.3f} to {ratios[-1]:.3f})")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old", help="folder holding the baseline's npvae/")
    p.add_argument("new", help="folder holding the npvae/ to compare")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n", type=int, default=60_000, help="training images (default 60,000)")
    p.add_argument("--data", type=Path, default=FASHION if FASHION.exists() else None,
                   help="gzipped IDX images, 784 pixels each (default: Fashion-MNIST if found)")
    args = p.parse_args(argv)
    for tree in (args.old, args.new):
        if not (Path(tree) / "npvae" / "__init__.py").exists():
            p.error(f"{tree} holds no npvae/ package; give a checkout's root folder")
    print(f"OLD = {args.old}\nNEW = {args.new}\ndata: {args.data or 'random binary images'}, "
          f"{args.n} images, {args.epochs} epochs a run, {args.pairs} pairs, OLD first in each "
          "pair")
    pairs = []
    for i in range(args.pairs):
        old, new = (run(tree, args.data, args.epochs, args.n) for tree in (args.old, args.new))
        pairs.append((old, new))
        print(f"pair {i + 1}: " + "   ".join(
            f"{k} {old[k]:.3f} -> {new[k]:.3f}" for k in old), flush=True)
    print("\n".join(summary(pairs)))


if __name__ == "__main__":
    main()
