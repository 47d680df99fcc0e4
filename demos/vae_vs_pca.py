"""The VAE as non-linear PCA: 2-D embeddings and reconstructions, side by side with PCA.

    python demos/vae_vs_pca.py --dataset fashion-mnist
    python demos/vae_vs_pca.py --dataset mnist --test-split-only   # only MNIST's test files

PCA maps x to its coordinates on the Z directions of largest variance, z = Uᵀ(x - x̄), and back
by the straight line x̂ = x̄ + U z: the best *linear* code of size Z, in squared error. The VAE
(here through npvae.VAEEstimator, a scikit-learn-style interface: fit, transform,
inverse_transform) learns both maps as neural networks: z = E[z|x] = mu(x), and x̂ = the mean of
p(x|z). With the same code size Z it can bend its code around the data, so its classes separate
better in 2-D and its reconstructions are sharper.

PCA's directions come from npvae.study.ppca.fit_ppca: W = U_Z (Λ_Z - σ² I)^{1/2}, so U_Z is W with its
columns scaled to unit length.

It writes to --out:
    vae_vs_pca_embedding.png        the test images' 2-D codes, coloured by class
    vae_vs_pca_reconstructions.png  test images, and their PCA and VAE reconstructions
and prints the test reconstruction error of both, in squared error per image.
"""

import sys
import time

import numpy as np

import _common
from npvae.run import plots
from npvae.run.estimator import VAEEstimator
from npvae.study.ppca import fit_ppca


def build_parser():
    return _common.parser(__doc__.splitlines()[0], epochs=10, latent=2,
                          out="figures/vae_vs_pca/{dataset}")


def pca(x_train, n_components):
    """(mean (D,), U (D, Z)): the data mean and the top Z principal directions, orthonormal."""
    mean, W, _ = fit_ppca(x_train, n_components)
    return mean, W / np.linalg.norm(W, axis=0)


def reconstruction_figure(x, rows, errors, context, side=28):
    """Inputs in the first row, then one row of reconstructions per method."""
    images = np.concatenate([x, *rows.values()])  # ((1 + methods)·n, D)
    fig = plots.image_grid(images, ncols=len(x))
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + 0.6)  # room for two-line title and axis label
    ax = fig.axes[0]
    ax.set_title(f"Reconstructions at the same code size\n{context}")
    ax.set_yticks(np.arange(1 + len(rows)) * (side + 1) + side / 2, ["input", *rows])
    ax.set_xlabel("one test image of each class\ntest squared error per image: " +
                  ", ".join(f"{name} {err:.1f}" for name, err in errors.items()))
    return fig


def main(argv=None):
    args, _, d = _common.parse_and_load(build_parser(), argv)
    Z = args.latent

    start = time.perf_counter()
    vae = VAEEstimator(latent_dim=Z, hidden_dims=tuple(args.hidden), epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, binarize="dynamic",
                       random_state=args.seed, verbose=True).fit(d.x_train)
    print(f"VAE trained in {time.perf_counter() - start:.1f} s")
    mean, U = pca(d.x_train, Z)

    codes = {"PCA": (d.x_test - mean) @ U,  # (N, Z): coordinates on the principal directions
             "VAE": vae.transform(d.x_test)}  # (N, Z): posterior means
    recons = {"PCA": np.clip(mean + codes["PCA"] @ U.T, 0, 1),  # (N, D)
              "VAE": vae.inverse_transform(codes["VAE"])}
    errors = {name: float(((r - d.x_test) ** 2).sum(axis=1).mean()) for name, r in recons.items()}
    print(f"test squared error per image (sum over {d.x_test.shape[1]} pixels in [0, 1]), "
          f"Z = {Z}:")
    for name, err in errors.items():
        print(f"  {name:4s} {err:8.2f}")

    context = plots.run_label(args.dataset, args.epochs, Z)
    dims = "" if Z == 2 else f" (first 2 of {Z})"
    show = slice(0, 2000)  # enough points to see the shapes, few enough for a small PNG
    fig = plots.latent_spaces(
        [(f"PCA: principal components{dims}", codes["PCA"][show, :2], d.y_test[show]),
         (f"VAE: posterior means E[z|x]{dims}", codes["VAE"][show, :2], d.y_test[show])],
        dataset=args.dataset, context=context)
    fig.suptitle(f"The VAE as non-linear PCA: 2-D codes of the test set — {context}")
    fig.axes[0].set_xlabel("principal component 1")
    fig.axes[0].set_ylabel("principal component 2")
    for circle in list(fig.axes[0].patches):  # the prior's circles mean nothing for PCA
        circle.remove()
    _, first = np.unique(d.y_test, return_index=True)  # one test image of each class
    figures = {
        "vae_vs_pca_embedding": fig,
        "vae_vs_pca_reconstructions": reconstruction_figure(
            d.x_test[first], {name: r[first] for name, r in recons.items()}, errors, context),
    }
    for name, fig in figures.items():
        print(f"wrote {plots.savefig(fig, f'{args.out}/{name}.png')}")
    return errors


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
