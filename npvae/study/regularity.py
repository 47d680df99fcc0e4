"""How regular a latent space is, in numbers: the two properties the KL term buys.

- **Completeness**: a point drawn from the prior decodes to something that looks like data.
  ``prior_distances`` decodes z ~ N(0, I) and measures how far each decoded image is from the
  nearest training image; ``grid_distances`` does the same for a grid over the box the codes
  occupy, where an autoencoder leaves holes.
- **Continuity**: nearby codes decode to similar images. ``interpolation_steps`` decodes a
  straight path between the codes of two images and measures the pixel change of each step;
  ``unevenness`` is the largest step over the mean step (1 for an even path, large where the
  path jumps from one cluster to another).

Every function takes a VAE (its code is the posterior mean mu) or an Autoencoder (its code).
Distances are Euclidean, in pixel space. Shapes: N examples, M reference examples, D pixels,
Z latent, P pairs, T steps.
"""

import numpy as np

from ..models.autoencoder import Autoencoder


def codes(model, x):
    """The code of each row of x: mu(x) for a VAE, enc(x) for an Autoencoder: (N, Z)."""
    return model.encode(x) if isinstance(model, Autoencoder) else model.encode(x)[0]


def nearest_distances(x, reference, batch_size=500):
    """‖x_n − r‖ for the nearest row r of ``reference``: x (N, D), reference (M, D) -> (N,).

    ‖x − r‖² = ‖x‖² + ‖r‖² − 2 x·r, one product per batch of rows, in float64."""
    reference = np.asarray(reference, np.float64)
    r2 = (reference * reference).sum(axis=1)  # (M,)
    out = np.empty(len(x))
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start:start + batch_size], np.float64)  # (B, D)
        d2 = (xb * xb).sum(axis=1)[:, None] + r2[None] - 2 * xb @ reference.T  # (B, M)
        out[start:start + batch_size] = np.sqrt(np.maximum(d2.min(axis=1), 0))
    return out


def prior_distances(model, reference, n=500, rng=None):
    """Distance from the decoded means of n draws z ~ N(0, I) to the nearest reference image."""
    return nearest_distances(model.sample(n, rng=rng), reference)


def latent_grid(z_codes, n=12, margin=0.05):
    """An n × n grid over the box the 2-D codes occupy (their 1st to 99th percentiles, widened
    by ``margin``): (n², 2), row-major from the top left."""
    lo, hi = np.percentile(z_codes, [1, 99], axis=0)  # (2,) each
    pad = margin * (hi - lo)
    u = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n)
    v = np.linspace(hi[1] + pad[1], lo[1] - pad[1], n)
    return np.array([[a, b] for b in v for a in u])


def grid_distances(model, z_codes, reference, n=12):
    """Distance from the decoded grid over the codes' box to the nearest reference image."""
    grid = latent_grid(z_codes, n).astype(model.dtype)
    return nearest_distances(model.decode(grid), reference)


def interpolation_steps(model, x_a, x_b, steps=20):
    """‖decode(z_{t+1}) − decode(z_t)‖ along the straight path z_t from code(x_a) to
    code(x_b): x_a, x_b (P, D) -> (P, T − 1)."""
    za, zb = codes(model, x_a), codes(model, x_b)  # (P, Z)
    t = np.linspace(0, 1, steps)[None, :, None]  # (1, T, 1)
    path = (1 - t) * za[:, None] + t * zb[:, None]  # (P, T, Z)
    images = model.decode(path.reshape(-1, za.shape[1]).astype(model.dtype))
    images = images.reshape(len(za), steps, -1)  # (P, T, D)
    return np.linalg.norm(np.diff(images, axis=1), axis=2)


def unevenness(step_sizes):
    """Largest step over mean step of each path, averaged over the paths: 1 for even paths."""
    step_sizes = np.asarray(step_sizes)
    return float((step_sizes.max(axis=1) / step_sizes.mean(axis=1)).mean())
