"""npvae's default model against the PyTorch reference VAE example, on the same data.

The reference is pytorch/examples' ``vae/main.py``: 784-400-20 with ReLU, a Bernoulli decoder on
continuous pixels in [0, 1] (BCE summed over pixels), Adam with lr 1e-3, batch 128, shuffled,
and a test loss that is the single-sample negative ELBO averaged over the test set. Both models
here see the same arrays in the same setting, so the test losses compare directly.

    python benchmarks/pytorch_reference.py --dataset fashion-mnist --epochs 10

PyTorch is not a dependency of npvae: without it, only npvae's column is printed.
"""

import argparse
import time

import numpy as np

import npvae
from npvae.run.data import load_dataset, train_val_split


def npvae_run(x_train, x_test, epochs, seed):
    model = npvae.VAE(784, seed=seed)
    opt = npvae.Adam(model.params, lr=1e-3)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), 128):
            _, grads, _ = model.loss_and_grads(x_train[order[i:i + 128]], rng=rng)
            opt.step(grads)
        seconds = time.perf_counter() - start
        chunks = [x_test[i:i + 1000] for i in range(0, len(x_test), 1000)]
        test = sum(model.loss_and_grads(c, rng=rng)[0] * len(c) for c in chunks) / len(x_test)
        losses.append((test, seconds))
    return losses


def torch_run(x_train, x_test, epochs, seed):
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)

    class VAE(nn.Module):  # verbatim architecture of pytorch/examples vae/main.py
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            h1 = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h1), self.fc22(h1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar

    def loss_function(recon_x, x, mu, logvar):
        bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
        return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, xs = torch.from_numpy(x_train), torch.from_numpy(x_test)
    losses = []
    for _ in range(epochs):
        start = time.perf_counter()
        for idx in torch.randperm(len(xt)).split(128):
            opt.zero_grad()
            recon, mu, logvar = model(xt[idx])
            loss = loss_function(recon, xt[idx], mu, logvar)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            test = 0.0
            for chunk in xs.split(1000):
                recon, mu, logvar = model(chunk)
                test += loss_function(recon, chunk, mu, logvar).item() / len(xs)
        losses.append((test, seconds))
    return losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist",
                        choices=["mnist", "fashion-mnist", "mnist-test-split"],
                        help="mnist-test-split: train on 8,000 MNIST test images, test on 2,000")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)

    if args.dataset == "mnist-test-split":
        x, y = load_dataset("mnist", "test", data_dir=args.data_dir)
        x_train, _, x_test, _ = train_val_split(x, y, 2000, np.random.default_rng(0))
    else:
        x_train, _ = load_dataset(args.dataset, "train", data_dir=args.data_dir)
        x_test, _ = load_dataset(args.dataset, "test", data_dir=args.data_dir)

    results = {"npvae": npvae_run(x_train, x_test, args.epochs, args.seed)}
    try:
        results["pytorch"] = torch_run(x_train, x_test, args.epochs, args.seed)
    except ImportError:
        print("(PyTorch is not installed: npvae only)")
    names = list(results)
    print(f"{args.dataset}: {len(x_train)} train, {len(x_test)} test; test loss = single-sample "
          f"negative ELBO, nats per example (lower is better)")
    print("epoch " + "".join(f"{n + ' test':>15}{n + ' s/epoch':>16}" for n in names))
    for e in range(args.epochs):
        print(f"{e + 1:>5} " + "".join(f"{results[n][e][0]:>15.2f}{results[n][e][1]:>16.1f}"
                                        for n in names))


if __name__ == "__main__":
    main()
