"""Walks through latent space: the decoded path between two images, and one dimension at a time.

    interpolate(model, x_a, x_b, steps)   decode((1 − t) z_a + t z_b) for t from 0 to 1
    traversal(model, x, values)           decode z(x) with one dimension z_j set to each value

z(x) is where the encoder puts x: the posterior mean mu(x) of a VAE (mu₁(x) for an HVAE, whose
decoder reads z₁), or an Autoencoder's code. A CVAE decodes with a label, so it is refused here.

Shapes: D input, Z latent, P pairs, T steps, V values.
"""

import numpy as np

from ..core import checks
from . import supports


def codes(model, x):
    """Where the encoder puts each x: mu(x), or an Autoencoder's code. x (N, D) -> (N, Z)."""
    if getattr(model, "conditional", False):
        raise TypeError(f"a {type(model).__name__} decodes with a label; interpolate and "
                        f"traversal take a model without labels (VAE, HVAE, Autoencoder).")
    z = model.encode(checks.as_batch(x, model.input_dim, model.dtype))
    return z if supports.is_autoencoder(model) else z[0]


def interpolate(model, x_a, x_b, steps=10):
    """The decoded straight path between the codes of x_a and x_b, endpoints included.

    z_t = (1 − t) z(x_a) + t z(x_b),  t = 0, 1/(T−1), …, 1;  returns the mean of p(x|z_t).
    x_a, x_b : (D,) for one pair -> (T, D), or (P, D) for P pairs -> (P, T, D).
    """
    steps = checks.positive_int(steps, "steps")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two endpoints), got {steps}.")
    single = np.ndim(x_a) == 1
    x_a, x_b = np.atleast_2d(x_a), np.atleast_2d(x_b)
    if x_a.shape != x_b.shape:
        raise ValueError(f"x_a and x_b must be pairs of the same shape, got {x_a.shape} and "
                         f"{x_b.shape}.")
    z_a, z_b = codes(model, x_a), codes(model, x_b)  # (P, Z) each
    t = np.linspace(0, 1, steps, dtype=model.dtype)[None, :, None]  # (1, T, 1)
    z = (1 - t) * z_a[:, None] + t * z_b[:, None]  # (P, T, Z)
    images = model.decode(z.reshape(-1, z.shape[-1])).reshape(len(x_a), steps, -1)
    return images[0] if single else images  # (T, D) or (P, T, D)


def traversal(model, x, values):
    """Each latent dimension alone: z = z(x) with z_j replaced by each of ``values``.

    x : (D,) the image whose code is the starting point; values : (V,) or (Z, V), the same
    values for every dimension or one row per dimension. Returns the decoded means (Z, V, D):
    row j changes z_j only.
    """
    z0 = codes(model, np.atleast_2d(x))[0]  # (Z,)
    Z = len(z0)
    values = np.broadcast_to(np.asarray(values, dtype=model.dtype), (Z, np.shape(values)[-1]))
    z = np.tile(z0, (Z, values.shape[1], 1))  # (Z, V, Z)
    z[np.arange(Z), :, np.arange(Z)] = values  # z[j, v, j] = values[j, v]
    return model.decode(z.reshape(-1, Z)).reshape(Z, values.shape[1], -1)
