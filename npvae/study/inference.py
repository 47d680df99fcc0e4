"""Amortised inference and its gap: the encoder's q(z|x) against the best q for each example.

A VAE's encoder *amortises* inference: one network predicts q(z|x) for every x, instead of
fitting a posterior to each example as variational EM would. The price is the amortisation gap,

    ELBO(x; q*) − ELBO(x; q_encoder) ≥ 0,

where q* is the best diagonal Gaussian for x alone with the decoder fixed. ``optimize_q`` finds
q* per example, by Adam on the ELBO, starting from the encoder's guess; the gradient with respect
to (mu, logvar) is steps 1 to 4 of the loss's backward (``VAE.loss_and_grads``), with q's
parameters as the variables instead of the encoder's outputs (``elbo_of_q_and_grads``). Together
with the importance-weighted log p(x), the gap splits log p(x) − ELBO(q_encoder) into

    [log p(x) − ELBO(q*)]  +  [ELBO(q*) − ELBO(q_encoder)]
     approximation gap        amortisation gap
    (q is diagonal Gaussian)   (q comes from one encoder).

Shapes: B examples, Z latent, K samples.
"""

import numpy as np

from ..core import checks
from ..core.distributions import (
    kl_standard_normal,
    reparameterize_backward,
    reparameterize_forward,
)
from ..core.optim import Adam
from .supports import plain_vae as _plain_vae


def elbo_of_q_and_grads(model, x, mu, logvar, eps):
    """The negative ELBO of a batch under q = N(mu, diag e^logvar) given as inputs, the decoder
    fixed, and its gradient with respect to mu and logvar (B, Z) each.

    Steps 1 to 4 of ``VAE.loss_and_grads``, with the same scalings (1/(K·B) on the NLL, 1/B on
    the KL); the decoder's weight gradients are computed on the way and dropped:
        dz = ∂recon/∂z (output layer and decoder),  dmu = Σ_K dz + mu / B,
        dlogvar = Σ_K dz · eps · std / 2 + ½ (e^logvar − 1) / B.
    x : (B, D), eps : (K, B, Z)  ->  loss (float), dmu, dlogvar.
    """
    B = x.shape[0]
    z, sampler_cache = reparameterize_forward(mu, logvar, eps)  # (K, B, Z)
    recon, dz = recon_and_dz(model, x, z)  # steps 1 and 2
    dmu, dlogvar = reparameterize_backward(dz, sampler_cache)  # step 3
    kl, dkl_dmu, dkl_dlogvar = kl_standard_normal(mu, logvar)  # step 4
    dmu += dkl_dmu / B
    dlogvar += dkl_dlogvar / B
    return recon + float(kl.mean()), dmu, dlogvar


def recon_and_dz(model, x, z):
    """Steps 1 and 2 of the loss's backward with the decoder fixed: the mean NLL of x at the
    samples z, (1/(K·B)) Σ_kb NLL_kb, and its gradient dz with respect to z, of z's shape.
    x : (B, D), z : (K, B, Z)  ->  recon (float), dz (K, B, Z). The decoder's weight gradients
    are computed on the way and dropped."""
    B, K = x.shape[0], z.shape[0]
    nll, dnll_dheads, decoder_cache = model._decode_nll(x, z, model._cond(None, B))  # (K, B)
    dheads = [d / (K * B) for d in dnll_dheads]  # step 1: 1/(K·B), each (K·B, D)
    dz = model._decode_backward(dheads, decoder_cache, {}).reshape(z.shape)  # step 2
    return float(nll.mean()), dz


def elbo_of_q(model, x, mu, logvar, k=100, rng=None):
    """The ELBO of each example under q = N(mu, diag e^logvar), the decoder fixed: the mean of
    log p(x|z) over k samples z ~ q, minus the closed-form KL. x (B, D), mu, logvar (B, Z)
    -> (B,) float64."""
    _plain_vae(model, "elbo_of_q")
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    x = model._check_x(x)
    k = checks.positive_int(k, "k")
    eps = rng.standard_normal((k, len(x), model.latent_dim), dtype=model.dtype)  # (K, B, Z)
    z, _ = reparameterize_forward(mu, logvar, eps)  # (K, B, Z)
    nll, _, _ = model._decode_nll(x, z, model._cond(None, len(x)), need_grad=False)  # (K, B)
    kl = kl_standard_normal(mu, logvar)[0]  # (B,)
    return -nll.astype(np.float64).mean(axis=0) - kl


def optimize_q(model, x, steps=300, lr=1e-2, k=4, rng=None):
    """The best diagonal Gaussian q*(z) for each example, the decoder fixed.

    (mu, logvar), one row per example, start at the encoder's and follow Adam on the negative
    ELBO with k reparameterised samples per step. The examples do not interact (the loss is a
    sum over them), so one batch optimises each independently. Returns mu, logvar (B, Z).
    """
    _plain_vae(model, "optimize_q")
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    x = model._check_x(x)
    mu, logvar = model.encode(x)
    q = {"mu": mu.copy(), "logvar": logvar.copy()}  # the per-example variational parameters
    opt = Adam(q, lr=lr)
    k = checks.positive_int(k, "k")
    for _ in range(checks.positive_int(steps, "steps")):
        eps = rng.standard_normal((k, len(x), model.latent_dim), dtype=model.dtype)
        _, dmu, dlogvar = elbo_of_q_and_grads(model, x, q["mu"], q["logvar"], eps)
        opt.step({"mu": dmu, "logvar": dlogvar})
    return q["mu"], q["logvar"]


def amortization_gap(model, x, steps=300, k_elbo=1000, k_log_px=1000, rng=None):
    """Per-example ELBO of the encoder's q, of the optimised q* (``optimize_q``), and the
    importance-weighted log p(x): a dict of three (B,) arrays, "elbo_encoder", "elbo_optimal",
    "log_px" (the IWAE estimate, from the encoder's q, with k_log_px samples)."""
    from .evaluate import log_likelihood

    _plain_vae(model, "amortization_gap")
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    mu, logvar = model.encode(x)
    mu_star, logvar_star = optimize_q(model, x, steps=steps, rng=rng)
    return {"elbo_encoder": elbo_of_q(model, x, mu, logvar, k_elbo, rng),
            "elbo_optimal": elbo_of_q(model, x, mu_star, logvar_star, k_elbo, rng),
            "log_px": log_likelihood(model, x, k=k_log_px, rng=rng)}
