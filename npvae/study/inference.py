"""Amortised inference and its gap: the encoder's q(z|x) against the best q for each example.

A VAE's encoder *amortises* inference: one network predicts q(z|x) for every x, instead of
fitting a posterior to each example as variational EM would. The price is the amortisation gap,

    ELBO(x; q*) − ELBO(x; q_encoder) ≥ 0,

where q* is the best diagonal Gaussian for x alone with the decoder fixed. ``optimize_q`` finds
q* per example, by Adam on the ELBO, starting from the encoder's guess; the gradient with respect
to (mu, logvar) is the model's own backward, steps 1 to 4 (``VAE._elbo_given_q``). Together
with the importance-weighted log p(x), the gap splits log p(x) − ELBO(q_encoder) into

    [log p(x) − ELBO(q*)]  +  [ELBO(q*) − ELBO(q_encoder)]
     approximation gap        amortisation gap
    (q is diagonal Gaussian)   (q comes from one encoder).

Shapes: B examples, Z latent, K samples.
"""

import numpy as np

from ..core import checks
from ..core.optim import Adam


def elbo_of_q(model, x, mu, logvar, k=100, rng=None):
    """The ELBO of each example under q = N(mu, diag e^logvar), the decoder fixed: the mean of
    log p(x|z) over k samples z ~ q, minus the closed-form KL. x (B, D), mu, logvar (B, Z)
    -> (B,) float64."""
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    x = checks.as_batch(x, model.input_dim, model.dtype)
    eps = rng.standard_normal((k, len(x), model.latent_dim), dtype=model.dtype)  # (K, B, Z)
    fwd = model._forward_given_q(x, None, mu, logvar, eps, need_grad=False)
    kl = 0.5 * (mu * mu + np.expm1(logvar) - logvar).sum(axis=1)  # (B,)
    return -fwd.nll.astype(np.float64).mean(axis=0) - kl


def optimize_q(model, x, steps=300, lr=1e-2, k=4, rng=None):
    """The best diagonal Gaussian q*(z) for each example, the decoder fixed.

    (mu, logvar), one row per example, start at the encoder's and follow Adam on the negative
    ELBO with k reparameterised samples per step. The examples do not interact (the loss is a
    sum over them), so one batch optimises each independently. Returns mu, logvar (B, Z).
    """
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    x = checks.as_batch(x, model.input_dim, model.dtype,
                        unit_interval=model.config.likelihood == "bernoulli")
    mu, logvar = model.encode(x)
    q = {"mu": mu.copy(), "logvar": logvar.copy()}  # the per-example variational parameters
    opt = Adam(q, lr=lr)
    for _ in range(checks.positive_int(steps, "steps")):
        eps = rng.standard_normal((k, len(x), model.latent_dim), dtype=model.dtype)
        _, _, dmu, dlogvar = model._elbo_given_q(x, None, q["mu"], q["logvar"], eps, 1.0, 0.0,
                                                 False, {})
        opt.step({"mu": dmu, "logvar": dlogvar})
    return q["mu"], q["logvar"]


def amortization_gap(model, x, steps=300, k_elbo=1000, k_log_px=1000, rng=None):
    """Per-example ELBO of the encoder's q, of the optimised q* (``optimize_q``), and the
    importance-weighted log p(x): a dict of three (B,) arrays, "elbo_encoder", "elbo_optimal",
    "log_px" (the IWAE estimate, from the encoder's q, with k_log_px samples)."""
    from .evaluate import log_likelihood

    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    mu, logvar = model.encode(x)
    mu_star, logvar_star = optimize_q(model, x, steps=steps, rng=rng)
    return {"elbo_encoder": elbo_of_q(model, x, mu, logvar, k_elbo, rng),
            "elbo_optimal": elbo_of_q(model, x, mu_star, logvar_star, k_elbo, rng),
            "log_px": log_likelihood(model, x, k=k_log_px, rng=rng)}
