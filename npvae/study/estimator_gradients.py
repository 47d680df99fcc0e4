"""The gradient side of the two estimators of log p(x): how noisy, and how biased, is the
gradient with respect to the decoder's parameters θ when z is drawn from the prior p(z) rather
than from the encoder's q(z|x)?

Both estimators are log p̂(x) = log (1/K) Σ_k w_k (``evaluate.log_likelihood``), with

    prior:      z_k ~ p(z),                      w_k = p(x|z_k)
    posterior:  z_k = mu + std · eps_k ~ q(z|x),  w_k = p(x|z_k) p(z_k) / q(z_k|x).

p(z) and q(z|x) do not depend on θ, so for θ in the decoder both gradients have one form,

    ∇θ log p̂(x) = Σ_k w̃_k ∇θ log p(x|z_k),   w̃_k = w_k / Σ_k' w_k'   (softmax over K of log w),

the sample's gradient weighted by its self-normalised weight (``VAE._iwae_loss_and_grads`` does
the same for every parameter). ``estimate_and_decoder_gradient`` computes it with the VAE's own
decoder pieces; ``gradient_noise_and_bias`` measures its spread over repeats and its distance
from a reference gradient, per image.

Shapes: K samples, B batch, D data, Z latent, P decoder parameters (all of them, flattened).
"""

import math

import numpy as np

from ..core import checks
from ..core.distributions import gaussian_log_density, logsumexp, standard_normal_log_density
from .supports import plain_vae

PROPOSALS = ("prior", "posterior")


def estimate_and_decoder_gradient(model, x, draws, proposal="prior"):
    """The estimate log p̂(x_b) = log (1/K) Σ_k w_kb of each example, and the gradient of their
    sum Σ_b log p̂(x_b) with respect to each decoder parameter θ.

        log w_kb = log p(x_b|z_kb)                                     (prior: z = draws)
        log w_kb = log p(x_b|z_kb) + log p(z_kb) - log q(z_kb|x_b)     (posterior: z = mu + std·eps)
        ∂ Σ_b log p̂(x_b) / ∂ log w_kb = w̃_kb = softmax over K of log w_kb,
        ∂ log w_kb / ∂ head_kb = -∂NLL_kb/∂head_kb   (p(z), q(z|x) do not depend on θ),

    so each decoder head gets dhead_kb = -w̃_kb ∂NLL_kb/∂head_kb, and ``VAE._decode_backward``
    carries it to θ. Scaling: a sum over the B examples (no 1/B); the 1/K of the average is a
    constant inside the log and drops out of the gradient, the weights w̃ sum to 1 over K.

    model : a plain VAE. x : (B, D). draws : (K, B, Z), standard normals: z itself for the
    prior, eps for the posterior. Returns log p̂ (B,) float64, and {θ name: ∂Σ_b log p̂/∂θ}.
    """
    plain_vae(model, "estimate_and_decoder_gradient")
    if proposal not in PROPOSALS:
        raise ValueError(f"proposal must be one of {PROPOSALS}, got {proposal!r}.")
    x = model._check_x(x)
    draws = checks.as_eps(draws, len(x), model.latent_dim, model.dtype)  # (K, B, Z)
    K = draws.shape[0]
    if proposal == "prior":  # z = draws ~ p(z): log w = log p(x|z)
        nll, dnll_dheads, decoder_cache = model._decode_nll(x, draws, model._cond(None, len(x)))
        log_w = -nll  # (K, B)
    else:  # z = mu + std · eps ~ q(z|x): log w = log p(x|z) + log p(z) - log q(z|x)
        fwd = model._forward(x, draws)
        nll, dnll_dheads, decoder_cache = fwd.nll, fwd.dnll_dheads, fwd.decoder_cache
        log_w = (-nll + standard_normal_log_density(fwd.z)[0]
                 - gaussian_log_density(fwd.z, fwd.mu, fwd.logvar)[0])  # (K, B)
    log_w = log_w.astype(np.float64)
    log_sum_w = logsumexp(log_w, axis=0)  # (B,)
    w_tilde = np.exp(log_w - log_sum_w)  # (K, B), Σ_K w̃ = 1
    row_weight = -w_tilde.reshape(K * len(x), 1).astype(model.dtype)  # (K·B, 1): w̃ · (-1)
    grads = {}  # filled with the decoder's parameters only
    model._decode_backward([d * row_weight for d in dnll_dheads], decoder_cache, grads)
    return log_sum_w - math.log(K), {name: grads[name] for name in model.params if name in grads}


def _flat_gradient(model, x, draws, proposal):
    """``estimate_and_decoder_gradient``'s gradient as one (P,) float64 vector."""
    grads = estimate_and_decoder_gradient(model, x, draws, proposal)[1]
    return np.concatenate([g.ravel() for g in grads.values()]).astype(np.float64)


def gradient_noise_and_bias(model, x, ks, repeats=2, rng=None):
    """The noise and the bias of each estimator's decoder gradient, per example, relative to
    the size of a reference gradient, averaged over the examples (each x_b alone, B = 1):

        g_r      the gradient of log p̂(x_b) with k fresh samples, r = 1..R repeats,
        ḡ        their mean over the R repeats,
        g_ref    the posterior estimator's gradient with k = max(ks), on samples of its own,
        noise²   = mean_b [ (1/(R-1)) Σ_r ‖g_r - ḡ‖² / ‖g_ref‖² ],
        bias²    = mean_b [ ‖ḡ - g_ref‖² / ‖g_ref‖² ],
        floor²   = mean_b [ noise_b² / R + noise_ref,b² ]   (each noise_b² / ‖g_ref‖² as above),

    each returned as its square root, a fraction of ‖g_ref‖. The bias is a distance between
    two noisy vectors: for an unbiased estimator it is about the floor, the noise of ḡ (noise/√R)
    and of the reference (noise_ref, the posterior's noise at k = max(ks)) added in squares. A
    bias well above its floor is a bias. x : (N, D); the draws come from ``rng`` in order: the
    reference's, then for each proposal and k the R repeats'. Returns {proposal: {"noise",
    "bias", "floor": (len(ks),) float64}}.
    """
    plain_vae(model, "gradient_noise_and_bias")
    x = model._check_x(x)
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    if checks.positive_int(repeats, "repeats") < 2:
        raise ValueError("the noise needs repeats ≥ 2.")
    ks = [checks.positive_int(k, "k") for k in ks]
    noise2 = {p: np.zeros((len(ks), len(x))) for p in PROPOSALS}  # per k and example, / ‖g_ref‖²
    bias2 = {p: np.zeros((len(ks), len(x))) for p in PROPOSALS}
    for b in range(len(x)):
        xb = x[b:b + 1]  # (1, D)

        def draws(k):
            return rng.standard_normal((k, 1, model.latent_dim), dtype=model.dtype)  # (K, 1, Z)

        g_ref = _flat_gradient(model, xb, draws(max(ks)), "posterior")  # (P,)
        ref2 = float(g_ref @ g_ref)
        for proposal in PROPOSALS:
            for i, k in enumerate(ks):
                g = np.stack([_flat_gradient(model, xb, draws(k), proposal)
                              for _ in range(repeats)])  # (R, P)
                g_bar = g.mean(axis=0)  # (P,)
                noise2[proposal][i, b] = ((g - g_bar) ** 2).sum() / (repeats - 1) / ref2
                bias2[proposal][i, b] = ((g_bar - g_ref) ** 2).sum() / ref2
    noise2_ref = noise2["posterior"][ks.index(max(ks))]  # (N,): the reference's own noise
    return {p: {"noise": np.sqrt(noise2[p].mean(axis=1)),
                "bias": np.sqrt(bias2[p].mean(axis=1)),
                "floor": np.sqrt((noise2[p] / repeats + noise2_ref).mean(axis=1))}
            for p in PROPOSALS}
