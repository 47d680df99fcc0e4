"""How regular a latent space is, in numbers: the two properties the KL term buys.

- **Codes against the prior**: generation samples z ~ N(0, I), so the codes of the data should
  sit where the prior puts its mass. ``outside_ball`` is the fraction of codes farther than 3
  from the origin (the prior's own fraction is ``prior_outside_ball``: 1.1 % in 2-D), and
  ``moment_matched_kl`` is KL(N(m, S) ‖ N(0, I)) of the Gaussian with the codes' mean and
  covariance (0 when the codes look like prior draws; large when they spread far beyond it).
- **Completeness**: a point drawn from the prior decodes to something that looks like data.
  ``prior_distances`` decodes z ~ N(0, I) and measures how far each decoded image is from the
  nearest training image; ``near_data_fraction`` counts the draws that come as close to the data
  as the model's own reconstructions typically do; ``prior_classes`` labels each decoded draw by
  its nearest training image, and ``effective_classes`` turns those labels into the number of
  classes the prior reaches (10 when it reaches all ten evenly). ``grid_distances`` does the
  same as ``prior_distances`` for a grid over the box the codes occupy, where the source texts
  expect an autoencoder to leave holes.
- **Continuity**: nearby codes decode to similar images. ``interpolation_steps`` decodes a
  straight path between the codes of two images and measures the pixel change of each step;
  ``unevenness`` is the largest step over the mean step (1 for an even path, large where the
  path jumps from one cluster to another).

Every function takes a VAE (its code is the posterior mean mu) or an Autoencoder (its code).
Distances are Euclidean, in pixel space. Shapes: N examples, M reference examples, D pixels,
Z latent, P pairs, T steps.
"""

import numpy as np
from scipy import stats

from ..models.autoencoder import Autoencoder


def codes(model, x):
    """The code of each row of x: mu(x) for a VAE, enc(x) for an Autoencoder: (N, Z)."""
    return model.encode(x) if isinstance(model, Autoencoder) else model.encode(x)[0]


def nearest(x, reference, batch_size=500):
    """The nearest row of ``reference`` to each row of x: x (N, D), reference (M, D) ->
    (distances (N,), indices (N,)).

    ‖x − r‖² = ‖x‖² + ‖r‖² − 2 x·r, one product per batch of rows, in float64."""
    reference = np.asarray(reference, np.float64)
    r2 = (reference * reference).sum(axis=1)  # (M,)
    distances, indices = np.empty(len(x)), np.empty(len(x), dtype=np.intp)
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start:start + batch_size], np.float64)  # (B, D)
        d2 = (xb * xb).sum(axis=1)[:, None] + r2[None] - 2 * xb @ reference.T  # (B, M)
        best = d2.argmin(axis=1)  # (B,)
        indices[start:start + batch_size] = best
        distances[start:start + batch_size] = np.sqrt(np.maximum(d2[np.arange(len(xb)), best],
                                                                 0))
    return distances, indices


def nearest_distances(x, reference, batch_size=500):
    """‖x_n − r‖ for the nearest row r of ``reference``: x (N, D), reference (M, D) -> (N,)."""
    return nearest(x, reference, batch_size)[0]


# --- where the codes sit, against the prior ---------------------------------------------------


def outside_ball(z_codes, radius=3.0):
    """The fraction of codes with ‖z‖ > radius: z_codes (N, Z) -> float."""
    return float((np.linalg.norm(z_codes, axis=1) > radius).mean())


def prior_outside_ball(latent_dim, radius=3.0):
    """The prior's own mass outside the ball: P(‖z‖ > radius) for z ~ N(0, I_Z).

    ‖z‖² is chi-squared with Z degrees of freedom; in 2-D this is exp(−radius²/2)."""
    return float(stats.chi2.sf(radius ** 2, latent_dim))


def moment_matched_kl(z_codes):
    """KL(N(m, S) ‖ N(0, I)) for the codes' mean m and covariance S: z_codes (N, Z) -> float.

    KL = ½ (tr S + mᵀm − Z − log det S), the closed form for two Gaussians with the second one
    standard (Kingma & Welling 2014, appendix B, in its full-covariance form)."""
    z = np.asarray(z_codes, np.float64)
    m = z.mean(axis=0)  # (Z,)
    S = np.atleast_2d(np.cov(z, rowvar=False))  # (Z, Z)
    _, logdet = np.linalg.slogdet(S)
    return float(0.5 * (np.trace(S) + m @ m - len(m) - logdet))


# --- what the prior's draws decode to ---------------------------------------------------------


def prior_distances(model, reference, n=500, rng=None):
    """Distance from the decoded means of n draws z ~ N(0, I) to the nearest reference image."""
    return nearest_distances(model.sample(n, rng=rng), reference)


def near_data_fraction(prior_dist, recon_dist, q=50):
    """The fraction of decoded prior draws at least as close to the data as the q-th percentile
    of the model's own reconstructions: prior_dist (N,), recon_dist (M,) -> float.

    Both are nearest-neighbour distances to the training images (``nearest_distances``). A
    reconstruction is the model's best attempt at a real image, so the percentile is what "near
    the data" means for this decoder, blur included."""
    return float((np.asarray(prior_dist) <= np.percentile(recon_dist, q)).mean())


def prior_classes(model, reference, labels, n=1000, rng=None):
    """The label of the nearest reference image to each of n decoded draws z ~ N(0, I): (n,)."""
    return np.asarray(labels)[nearest(model.sample(n, rng=rng), reference)[1]]


def effective_classes(labels, n_classes=10):
    """exp(entropy) of the labels' frequencies: the number of classes they reach, weighted by
    how evenly (n_classes when all are equally frequent, 1 when all labels are one class)."""
    p = np.bincount(np.asarray(labels), minlength=n_classes) / len(labels)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


# --- inside the codes' own region ---------------------------------------------------------------


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
