"""Validation of what users pass to the public API: clear errors that name the fix.

Rules, documented once here:
- data must be a 2-D floating array (B, D); float data of another precision is cast to the
  model's dtype (so float64 data trains a float32 model in float32). Integer, boolean and uint8
  arrays are refused, because their scale is ambiguous (0..255 pixels or 0/1 bits): convert them
  with ``npvae.run.data.to_float`` or ``x.astype(np.float32) / 255``.
- values must be finite, and within [0, 1] for a Bernoulli likelihood.
"""

import numbers
import os

import numpy as np

from .errors import TooLargeError


def as_batch(x, input_dim, dtype, name="x", unit_interval=False):
    """Return x as a (B, input_dim) array of ``dtype``, or raise a ValueError/TypeError."""
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating)):
        raise TypeError(
            f"{name} has dtype {x.dtype}; npvae needs floating-point data. Convert it first, "
            f"e.g. {name}.astype(np.float32) / 255 for uint8 pixels (npvae.run.data.to_float does this)."
        )
    if x.ndim != 2 or x.shape[1] != input_dim:
        raise ValueError(
            f"{name} has shape {x.shape}; expected (B, D) = (batch, {input_dim}). "
            f"Flatten images first, e.g. {name}.reshape(len({name}), -1)."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {x.shape}); pass at least one example.")
    x = x.astype(dtype, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean or drop those examples.")
    if unit_interval and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name} has values in [{x.min():g}, {x.max():g}], but a Bernoulli likelihood needs "
            f"targets in [0, 1]. Scale the data (e.g. divide pixels by 255) or use "
            f"likelihood='gaussian'."
        )
    return x


def as_eps(eps, batch_size, noise_dim, dtype, k=1, rng=None, default_rng=None):
    """Return eps as a (B, Z) or (K, B, Z) array of ``dtype``, or raise a ValueError.

    eps=None draws eps ~ N(0, I) of shape (B, Z), or (k, B, Z) for k > 1, from ``rng`` (a
    Generator the caller passed in), else from ``default_rng`` (the model's own)."""
    if eps is None:
        k = positive_int(k, "k")
        rng = default_rng if rng is None else as_generator(rng, "rng")
        shape = (batch_size, noise_dim) if k == 1 else (k, batch_size, noise_dim)
        return rng.standard_normal(shape, dtype=dtype)
    eps = np.asarray(eps)
    if eps.ndim not in (2, 3) or eps.shape[-2:] != (batch_size, noise_dim):
        raise ValueError(
            f"eps has shape {eps.shape}; expected (B, Z) = ({batch_size}, {noise_dim}) or "
            f"(K, B, Z) = (K, {batch_size}, {noise_dim}) for K samples per example."
        )
    if eps.ndim == 3 and eps.shape[0] == 0:
        raise ValueError("eps has K = 0 samples; pass at least one sample per example.")
    if k != 1 and (eps.ndim == 2 or eps.shape[0] != k):
        raise ValueError(f"k = {k!r} samples were asked for, but eps has shape {eps.shape}; "
                         f"pass eps of shape (k, B, Z), or leave eps out to draw it.")
    eps = eps.astype(dtype, copy=False)
    if not np.isfinite(eps).all():
        raise ValueError("eps contains NaN or infinite values; draw it from a standard normal.")
    return eps


def as_cond(cond, batch_size, cond_dim, dtype):
    """Return the condition as a (B, C) array of ``dtype``; None gives C = 0 columns for a plain
    VAE. Raises a TypeError/ValueError naming the fix."""
    if cond is None:
        if cond_dim:
            raise TypeError(f"this model is conditional ({cond_dim} classes): pass the labels y, "
                            f"e.g. loss_and_grads(x, y), encode(x, y).")
        return np.zeros((batch_size, 0), dtype)
    cond = np.asarray(cond)
    if cond.shape != (batch_size, cond_dim):
        fix = ("a plain VAE takes no condition: leave cond=None, or use npvae.CVAE"
               if cond_dim == 0 else "one row per example, one one-hot column per class")
        raise ValueError(f"cond has shape {cond.shape}; expected (B, C) = ({batch_size}, "
                         f"{cond_dim}): {fix}.")
    cond = cond.astype(dtype, copy=False)
    if not np.isfinite(cond).all():
        raise ValueError("cond contains NaN or infinite values; pass one-hot labels.")
    return cond


def positive_int(value, name):
    """Return value as an int ≥ 1, or raise a TypeError/ValueError naming ``name``."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive integer, got {value!r}.")
    if isinstance(value, bool) or not float(value).is_integer() or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def nonnegative(value, name):
    """Return value as a float ≥ 0 (finite), or raise a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number ≥ 0, got {value!r}.")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}.")
    return float(value)


def as_generator(value, name):
    """A numpy Generator from ``value``.

    For a ``seed``: None, an int ≥ 0, a SeedSequence or a Generator (used as it is).
    For an ``rng`` (any other name): a Generator only, since randomness is passed in.
    """
    if isinstance(value, np.random.Generator):
        return value
    if name != "seed":
        raise TypeError(f"{name} must be a numpy Generator, got {type(value).__name__}; "
                        f"pass e.g. {name}=np.random.default_rng({value!r}).")
    if isinstance(value, bool) or not (value is None or isinstance(
            value, (numbers.Integral, np.random.SeedSequence))):
        raise TypeError(f"seed must be None, an integer ≥ 0, a SeedSequence or a Generator, "
                        f"got {value!r}.")
    if isinstance(value, numbers.Integral) and value < 0:
        raise ValueError(f"seed must be an integer ≥ 0, got {value}.")
    return np.random.default_rng(value)


# ----------------------------------------------------------------------------- memory

def physical_bytes():
    """The machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(n_bytes, what, fix):
    """Refuse, with a MemoryError naming ``what`` and ``fix``, a request for more bytes than
    the machine has: asked before allocating, so the answer is a sentence, not a traceback."""
    total = physical_bytes()
    if total is not None and n_bytes > total:
        raise TooLargeError(f"{what} needs about {_size(n_bytes)}, more than this machine's "
                            f"{_size(total)} of memory; {fix}.")



def _size(n_bytes):
    """e.g. "584 GB", "3.1 MB"."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.0f} bytes"
