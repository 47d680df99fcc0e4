"""Planted bugs: what a caught mistake looks like (``npvae gradcheck --plant NAME``).

Each plant replaces one function of npvae with a wrong twin, for the length of a ``with``
block, in every module that calls it. They are the mistakes that implementations of the VAE
make; the report run inside the block shows which check catches each, and by how much:

- a wrong forward *and* backward that agree (the KL without its ½; exp(logvar) as the
  standard deviation) is consistent, so finite differences cannot see it where the loss uses
  that one function; the objective checks catch it (the KL against a Monte Carlo estimate, the
  sampler's variance, the ELBO of an exact posterior against log p(x));
- a backward that disagrees with its forward (a missing clamp mask, a sign error, a missing 1/B)
  is caught by the finite-difference checks.
"""

import contextlib

import numpy as np

from ..core import distributions
from ..core import layers
from ..core import vae

# The right functions, kept before any plant replaces them.
_KL = distributions.kl_standard_normal
_DENSE_BACKWARD = layers.dense_backward


def _kl_without_half(mu, logvar):
    kl, dmu, dlogvar = _KL(mu, logvar)
    return 2 * kl, 2 * dmu, 2 * dlogvar  # consistent: the gradient of the wrong value


def _variance_as_std_forward(mu, logvar, eps):
    sigma = np.exp(logvar)  # the bug: the variance used as the standard deviation
    return mu + sigma * eps, (sigma, eps)


def _variance_as_std_backward(dz, cache):
    sigma, eps = cache
    dmu, dlogvar = dz * 1.0, dz * eps * sigma  # ∂(e^lv · eps)/∂lv = eps · e^lv: consistent
    if dz.ndim == 3:
        dmu, dlogvar = dmu.sum(axis=0), dlogvar.sum(axis=0)
    return dmu, dlogvar


def _clamp_without_mask(dy, inside):
    return dy * 1.0  # the bug: the gradient passes where the clamp binds


def _dense_bias_sign(dy, cache, need_dx=True):
    dx, dW, db = _DENSE_BACKWARD(dy, cache, need_dx)
    return dx, dW, -db  # the bug: db = -Σ dy


def _kl_gradient_without_1_over_b(mu, logvar):
    kl, dmu, dlogvar = _KL(mu, logvar)
    B = mu.shape[0] if mu.ndim > 1 else 1
    return kl, B * dmu, B * dlogvar  # the bug: the model's β/B then leaves β, not β/B


# name -> (what is wrong, {(module, attribute): replacement})
PLANTS = {
    "kl-half": ("the KL's ½ dropped, in its value and its gradient alike",
                {(distributions, "kl_standard_normal"): _kl_without_half}),
    "variance-as-std": ("the sampler uses exp(logvar), the variance, as the standard deviation "
                        "(forward and backward consistent)",
                        {(distributions, "reparameterize_forward"): _variance_as_std_forward,
                         (distributions, "reparameterize_backward"): _variance_as_std_backward}),
    "clamp-mask": ("the log-variance clamp's backward lets the gradient through where it binds",
                   {(layers, "clamp_backward"): _clamp_without_mask}),
    "bias-sign": ("a sign error in every dense layer's bias gradient, db = -Σ dy",
                  {(layers, "dense_backward"): _dense_bias_sign}),
    "kl-missing-1/B": ("the KL's gradient misses its 1/B (the value is right)",
                       {(distributions, "kl_standard_normal"): _kl_gradient_without_1_over_b}),
}


@contextlib.contextmanager
def planted(name):
    """Within the block, the bug ``name`` replaces the right function in npvae.core.layers,
    npvae.core.distributions and npvae.core.vae (which imports them by name)."""
    if name not in PLANTS:
        raise ValueError(f"unknown plant {name!r}; choose one of {', '.join(PLANTS)}.")
    saved = []
    for (module, attr), wrong in PLANTS[name][1].items():
        right = getattr(module, attr)
        for target in (module, vae):
            if getattr(target, attr, None) is right:
                saved.append((target, attr, right))
                setattr(target, attr, wrong)
    try:
        yield PLANTS[name][0]
    finally:
        for target, attr, right in reversed(saved):
            setattr(target, attr, right)
