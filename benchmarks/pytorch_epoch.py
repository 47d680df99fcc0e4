"""The standard row of benchmarks/epoch_time.py in PyTorch: seconds per epoch, epoch by epoch.

    python benchmarks/pytorch_epoch.py --epochs 8       # or: epoch_time.py --torch

The same model and loop as npvae's standard row: 784-400-20, ReLU, a Bernoulli decoder on
logits (``binary_cross_entropy_with_logits``, summed over pixels, as npvae's stable BCE), the
closed-form KL, the loss averaged over the batch, the log-variance clamped to [-30, 30] as
npvae clamps it, Adam lr 1e-3 (``torch.optim.Adam``, its default implementation), batch 128,
float32, on the same 60,000 examples (``epoch_time.load_data``) in the same shuffled order
(``npvae.core.batching.minibatches``). It runs on the CPU with PyTorch's default threads, or
``--threads`` (epoch_time.py passes its BLAS thread count, so that both use as many cores).
It reports each epoch's wall seconds and CPU seconds (all threads).

PyTorch is a benchmark-only tool, never a dependency of npvae: ``pip install torch`` (a CPU
wheel) to run this.
"""

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from epoch_time import N_EXAMPLES, load_data  # benchmarks/ is on sys.path when run as a script
from npvae.core.batching import minibatches


class VAE(nn.Module):
    def __init__(self, D=784, H=400, Z=20):
        super().__init__()
        self.enc, self.mu, self.logvar = nn.Linear(D, H), nn.Linear(H, Z), nn.Linear(H, Z)
        self.dec, self.out = nn.Linear(Z, H), nn.Linear(H, D)

    def loss(self, x):
        """-ELBO averaged over the batch, one sample of z per example."""
        h = F.relu(self.enc(x))  # (B, H)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-30.0, 30.0)  # (B, Z)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # (B, Z)
        logits = self.out(F.relu(self.dec(z)))  # (B, D)
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(mu * mu + torch.expm1(logvar) - logvar)
        return (nll + kl) / len(x)


def time_epochs(x, epochs, seed, batch_size=128):
    torch.manual_seed(seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(x)

    def epoch(n, e):
        for _, index in minibatches(n, batch_size, seed=0, epoch=e):
            opt.zero_grad()
            loss = model.loss(xt[index])
            loss.backward()
            opt.step()

    epoch(20 * batch_size, 0)  # warm-up, as epoch_time.py's
    seconds, cpu = [], []
    for e in range(epochs):
        t0, c0 = time.perf_counter(), cpu_seconds()
        epoch(len(xt), e)
        seconds.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
    return seconds, cpu


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="epochs of 5,000 examples")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    args = parser.parse_args(argv)
    x, source = load_data(5_000 if args.quick else N_EXAMPLES, np.random.default_rng(args.seed),
                          args.data_dir)
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds, cpu = time_epochs(np.ascontiguousarray(x), args.epochs, args.seed)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "data": source,
              "epochs": seconds, "cpu": cpu}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; data: {source}")
        print("epoch s " + " ".join(f"{s:.2f}" for s in seconds))
        print("cpu s   " + " ".join(f"{s:.2f}" for s in cpu))


if __name__ == "__main__":
    sys.exit(main())
