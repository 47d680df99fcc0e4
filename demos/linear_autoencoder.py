"""A linear autoencoder finds PCA's subspace but not its axes; a linear VAE finds both.

    python demos/linear_autoencoder.py

On synthetic data with two principal axes of different variance (D = 10), two linear models
(no hidden layer, Gaussian decoder) are trained with Adam from random weights:

- an autoencoder with squared error: its loss depends on the decoder only through the subspace
  it spans, so any invertible mix of the principal axes is as good as the axes themselves;
- a VAE: its diagonal q(z|x) can match the posterior only if the decoder's directions are
  orthogonal, and with distinct variances that singles out the principal axes (Lucas et al.
  2019).

It prints, for each model, the principal angles between the decoder's directions and PCA's top
subspace (both ~0°: the same subspace) and the angle from each decoder direction to the nearest
principal axis (the VAE's ~0°, the autoencoder's not), and draws linear_autoencoder.png: both
models' directions in the plane of the two principal axes.
"""

import argparse
import sys

import numpy as np

import _common
import npvae
from npvae.run import plots
from npvae.study import ppca


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="synthetic examples")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="figures/linear_autoencoder")
    return p


def synthetic(n, rng, D=10, scales=(3.0, 1.5), noise=0.3):
    """x = z diag(scales) Uᵀ + noise·ε: principal axes U (D, 2) with variances scales²."""
    U, _ = np.linalg.qr(rng.standard_normal((D, len(scales))))  # (D, Z), orthonormal
    z = rng.standard_normal((n, len(scales)))
    return z * np.array(scales) @ U.T + noise * rng.standard_normal((n, D)), noise


def axis_angles(directions, axes):
    """Angle in degrees from each direction (column of (D, Z)) to the nearest axis (column)."""
    d = directions / np.linalg.norm(directions, axis=0)
    cos = np.abs(d.T @ axes).max(axis=1)  # (Z,)
    return np.degrees(np.arccos(np.clip(cos, 0, 1)))


def main(argv=None):
    args = build_parser().parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x, noise = synthetic(args.n, rng)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2].T  # (D, 2): PCA's principal axes, largest variance first
    models = {
        "linear autoencoder": npvae.Autoencoder(x.shape[1], hidden_dims=(), latent_dim=2,
                                                likelihood="gaussian", sigma=noise,
                                                dtype=np.float64, seed=args.seed),
        "linear VAE": npvae.VAE(x.shape[1], hidden_dims=(), latent_dim=2, likelihood="gaussian",
                                sigma=noise, dtype=np.float64, seed=args.seed),
    }
    directions, results = {}, {}
    for name, model in models.items():
        npvae.train(model, x, epochs=args.epochs, batch_size=128, lr=args.lr, verbose=False,
                    rng=np.random.default_rng([args.seed, 1]))
        W = model.params["out.W"].T  # (D, Z): the decoder's direction for each latent
        directions[name] = W
        results[name] = {"subspace": ppca.principal_angles(W, axes),
                         "axes": axis_angles(W, axes)}
        print(f"{name:20s} principal angles to PCA's subspace "
              f"{np.array2string(results[name]['subspace'], precision=2)}°, angle from each "
              f"direction to the nearest principal axis "
              f"{np.array2string(results[name]['axes'], precision=1)}°")
    _common.save_figures({"linear_autoencoder": plots.linear_directions(directions, axes)},
                         args.out)
    return results


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
