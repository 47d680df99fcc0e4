"""Evaluation of a trained VAE, in nats per example.

    elbo(model, x)                the ELBO = -(recon + KL), one sample of z per example
    log_likelihood(model, x, k)   log p(x) ≈ log (1/k) Σ_k w_k per example (Burda et al. 2016)
    active_units(model, x)        how many latent units the encoder uses
    kl_per_dimension(model, x)    the mean KL of each latent dimension
    reconstruction_error(model, x)  -log p(x | the decoded code), all an Autoencoder has
    evaluate(model, x, k)         all of the above in one dict (what ``npvae evaluate`` prints)

Models: every function takes a VAE, a CVAE (with its labels ``y``) or an HVAE; for the HVAE the
per-dimension functions cover both layers, z₁'s dimensions then z₂'s, each layer's KL against its
own prior (p(z₁|z₂) and N(0, I)). An Autoencoder has no q(z|x), no prior and no ELBO: it gets
``reconstruction_error`` (and ``evaluate`` reports that alone); the others refuse it by name.

The noise is drawn from ``rng`` (default: the model's own generator) example by example, in
order: example n gets the n-th block of standard normals, (Z,) for the ELBO and (k, Z) for the
log-likelihood. So the numbers depend on the seed only, never on ``batch_size`` or on how the
work is split into chunks.

For a conditional model (a CVAE), pass its labels as ``y``: (N,) ints.

Shapes: N examples, D input, Z latent, B examples per chunk, K samples per chunk.
"""

import math

import numpy as np

from ..core import checks
from ..core import distributions
from . import memory, supports
from ..core.batching import minibatches
from ..core.distributions import logsumexp

# Decoder rows (examples × samples) per chunk of the log-likelihood. For the 784-400-20 model a
# chunk's largest arrays, (rows, 784) float32, are ~3 MB each: they stay in the L3 cache.
# Chunks of 128 to 2048 rows all took 460-570 s for k = 5000 over 10,000 images, within this
# 2-core VM's noise (benchmarks/iwae_time.py --max-rows), once memory.keep_freed_memory stopped
# the page faults.
MAX_ROWS = 1024

# Burda et al. (2016): a unit is active when Var_x E_q[z|x] exceeds this.
ACTIVE_THRESHOLD = 0.01


def _data(model, x):
    """x checked and cast to the model's dtype, (N, D)."""
    return checks.as_batch(x, model.input_dim, model.dtype,
                           unit_interval=model.config.likelihood == "bernoulli")


def _labels(model, y, n):
    """y checked against the model: None for a VAE, (N,) labels for a CVAE."""
    if model.conditional and y is None:
        raise TypeError("a conditional model (CVAE) needs the labels: pass y=..., (N,) ints.")
    if not model.conditional and y is not None:
        raise TypeError("y is for a conditional model (CVAE); this model takes no labels.")
    if y is not None and len(y) != n:
        raise ValueError(f"y has {len(y)} labels for {n} examples; pass one label per example.")
    return y


def _given(y, index):
    """The label arguments of a model call on the batch ``index``: () or (y[index],)."""
    return () if y is None else (np.asarray(y)[index],)


def _encode(model, x, y=None, batch_size=1000):
    """q(z|x) for every example, encoded in batches: (mu, logvar), each (N, Z)."""
    parts = [model.encode(x[index], *_given(y, index))
             for _, index in minibatches(len(x), batch_size)]
    return tuple(np.concatenate(a) for a in zip(*parts))


def elbo(model, x, rng=None, batch_size=1000, y=None):
    """The evidence lower bound, averaged over the examples, in nats.

    elbo = -(recon + kl),  recon = -log p(x|z) at one z = mu + std·eps per example,
    kl = KL(q(z|x) ‖ N(0, I)) in closed form (Kingma & Welling 2014, appendix B).

    Parameters
    ----------
    model : VAE or CVAE.
    x : (N, D) array.
    rng : Generator or None (the model's own generator).
    batch_size : int, examples per forward pass.
    y : (N,) labels for a CVAE, else None.

    Returns
    -------
    dict of floats: "elbo", "recon", "kl", each a mean over the N examples.
    """
    supports.latent_variable(model, "evaluate.elbo", "evaluate.reconstruction_error(model, x)")
    x = _data(model, x)
    y = _labels(model, y, len(x))
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    recon = kl = 0.0
    for _, index in minibatches(len(x), batch_size):
        xb, given = x[index], _given(y, index)  # (B, D)
        eps = rng.standard_normal((len(xb), model.noise_dim), dtype=model.dtype)  # (B, Z)
        nll_b, kl_b = model.elbo_terms(xb, *given, eps)  # (B,) each
        recon += float(nll_b.sum(dtype=np.float64))
        kl += float(kl_b.sum(dtype=np.float64))
    recon, kl = recon / len(x), kl / len(x)
    return {"elbo": -(recon + kl), "recon": recon, "kl": kl}


def reconstruction_error(model, x, batch_size=1000, y=None):
    """The mean of -log p(x | x̂) over the examples, in nats, with x̂ decoded from the code
    without noise: dec(enc(x)) for an Autoencoder (its whole loss), dec(mu(x)) for a VAE, CVAE
    (with its labels y) or HVAE (z₁ = mu₁(x))."""
    x = _data(model, x)
    y = _labels(model, y, len(x))
    total = 0.0
    for _, index in minibatches(len(x), batch_size):
        xb, given = x[index], _given(y, index)  # (B, D)
        if supports.is_autoencoder(model):
            nll = model.nll(xb)  # (B,)
        else:  # at eps = 0 the sample is the posterior mean
            nll = model.nll(xb, *given, np.zeros((len(xb), model.noise_dim), model.dtype))
        total += float(nll.sum(dtype=np.float64))
    return total / len(x)


def validation_loss(model, x, rng=None, batch_size=1000, y=None):
    """The loss ``npvae.train`` records on validation data: the -ELBO of ``elbo`` ("loss",
    "recon", "kl"), or for an Autoencoder its reconstruction error (its training loss, KL 0)."""
    if supports.is_autoencoder(model):
        recon = reconstruction_error(model, x, batch_size)
        return {"loss": recon, "recon": recon, "kl": 0.0}
    result = elbo(model, x, rng=rng, batch_size=batch_size, y=y)
    return {"loss": -result["elbo"], "recon": result["recon"], "kl": result["kl"]}


def log_likelihood(model, x, k=5000, rng=None, batch_size=None, max_rows=MAX_ROWS, y=None,
                   proposal="posterior", progress=None):
    """Importance-weighted estimate of log p(x), per example, in nats (Burda et al. 2016).

    log p(x) ≈ log (1/k) Σ_k w_k,   log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),
    with z_k = mu + std·eps_k ~ q(z|x). The weights hold the sampled densities, never the
    analytic KL. Its expectation is the k-sample IWAE bound: below log p(x), rising with k.

    The work goes in chunks of at most ``max_rows`` decoder rows (examples × samples). When k
    alone exceeds that, each example's k samples are split too, and the partial sums combine as
    log Σ w = logaddexp(log Σ_chunk1 w, log Σ_chunk2 w, ...), in float64.

    Parameters
    ----------
    model : VAE or CVAE (log p(x|y), with the labels y).
    x : (N, D) array.
    k : int, importance samples per example.
    rng : Generator or None (the model's own generator).
    batch_size : int or None, the most examples per chunk (None: as many as ``max_rows`` allows).
    max_rows : int, the most decoder rows per chunk; bounds the memory.
    y : (N,) labels for a CVAE, else None.
    proposal : "posterior" (the importance-weighted estimate above), or "prior": the naive
        estimator p(x) ≈ (1/k) Σ_k p(x|z_k) with z_k ~ p(z), unbiased for p(x) but of a variance
        so large (almost every z misses x) that its log needs far more samples (a VAE only).
    progress : None, or a function called as progress(done, N) after each chunk of examples
        (``npvae evaluate`` prints the time left with it).

    Returns
    -------
    (N,) float64 array.
    """
    supports.latent_variable(model, "evaluate.log_likelihood",
                             "evaluate.reconstruction_error(model, x)")
    if proposal not in ("posterior", "prior"):
        raise ValueError(f"proposal must be 'posterior' or 'prior', got {proposal!r}.")
    if proposal == "prior" and y is not None:
        raise ValueError("the prior-sampling estimator is for a VAE (no labels).")
    x = _data(model, x)
    y = _labels(model, y, len(x))
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    k = checks.positive_int(k, "k")
    max_rows = checks.positive_int(max_rows, "max_rows")
    memory.keep_freed_memory()  # the chunks reuse freed pages instead of faulting in new ones
    n_examples = max(1, max_rows // k)  # examples per chunk; 1 whenever k is split
    if batch_size is not None:
        n_examples = min(n_examples, checks.positive_int(batch_size, "batch_size"))
    log_p = np.empty(len(x), dtype=np.float64)  # (N,)
    for _, index in minibatches(len(x), n_examples):
        xb, given = x[index], _given(y, index)  # (B, D)
        log_sum_w = np.full(len(xb), -np.inf)  # (B,): log Σ w over the samples so far
        for _, samples in minibatches(k, max_rows):  # the k samples, at most max_rows at once
            # Example-major, as the stream is laid out: (B, K, Z) is the next B·K·Z normals.
            n_samples = samples.stop - samples.start
            eps = rng.standard_normal((len(xb), n_samples, model.noise_dim),
                                      dtype=model.dtype)  # (B, K, Z)
            eps = eps.transpose(1, 0, 2)  # (K, B, Z)
            log_w = (model.log_weights(xb, *given, eps) if proposal == "posterior"
                     else model.prior_log_weights(xb, *given, eps))  # (K, B)
            log_sum_w = np.logaddexp(log_sum_w, logsumexp(log_w.astype(np.float64), axis=0))
        log_p[index] = log_sum_w - math.log(k)
        if progress is not None:
            progress(index.stop, len(x))
    return log_p


def class_log_likelihoods(model, x, k=100, rng=None):
    """log p(x | y = c) for every example and every class c of a CVAE, importance-weighted with
    k samples each (``log_likelihood``): x (N, D) -> (N, C) float64."""
    if not getattr(model, "conditional", False):
        raise TypeError("class_log_likelihoods needs a conditional model (npvae.CVAE).")
    x = _data(model, x)
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    return np.stack([log_likelihood(model, x, k=k, rng=rng, y=np.full(len(x), c))
                     for c in range(model.n_classes)], axis=1)


def classify(model, x, k=100, rng=None, prior=None):
    """A generative model as a classifier, by Bayes' rule:

        ŷ(x) = argmax_y p(y|x) = argmax_y [log p(x|y) + log p(y)],

    with log p(x|y) the importance-weighted estimate of each class (``class_log_likelihoods``).

    prior : (C,) class probabilities p(y), e.g. the training labels' frequencies
        ``np.bincount(y_train, minlength=C) / len(y_train)``; None for uniform.
    Returns the predicted labels (N,) and the log posteriors log p(y|x), (N, C), normalised.
    """
    log_lik = class_log_likelihoods(model, x, k=k, rng=rng)  # (N, C)
    C = log_lik.shape[1]
    prior = np.full(C, 1.0 / C) if prior is None else np.asarray(prior, np.float64)
    if prior.shape != (C,) or not (np.all(prior >= 0) and abs(prior.sum() - 1) < 1e-6):
        raise ValueError(f"prior must be {C} class probabilities that sum to 1, got {prior!r}.")
    with np.errstate(divide="ignore"):  # a class of prior 0 gets log p(y) = -inf
        joint = log_lik + np.log(prior)  # (N, C)
    log_post = joint - logsumexp(joint, axis=1)[:, None]
    return np.argmax(joint, axis=1), log_post


def posterior_mean_variance(model, x, y=None):
    """Var over x of the posterior mean E_q[z|x] = mu(x), for each latent unit: (Z,) float64.
    For an HVAE, (Z₁ + Z₂,): mu₁(x), then mu₂ of q(z₂|z₁) at z₁ = mu₁(x)."""
    supports.latent_variable(model, "evaluate.posterior_mean_variance and active_units")
    x = _data(model, x)
    if supports.is_hierarchical(model):
        mu = np.concatenate([m for m, _ in model.encode_layers(x)], axis=1)  # (N, Z₁ + Z₂)
    else:
        mu, _ = _encode(model, x, _labels(model, y, len(x)))
    return mu.astype(np.float64).var(axis=0)


def active_units(model, x, threshold=ACTIVE_THRESHOLD, y=None):
    """The number of active latent units: those with Var_x mu(x) > threshold (Burda et al. 2016).

    A unit whose posterior mean does not move with x carries no information about x.
    """
    return int((posterior_mean_variance(model, x, y) > threshold).sum())


def kl_per_dimension(model, x, y=None, rng=None, batch_size=1000):
    """KL(q(z_j|x) ‖ N(0, 1)) for each latent dimension j, averaged over x: (Z,) float64.

    Sums to the mean closed-form KL of the ELBO. For an HVAE, (Z₁ + Z₂,): each dimension's
    share of its layer's KL term against that layer's own prior, z₁'s first (log q(z₁ⱼ|x) −
    log p(z₁ⱼ|z₂), sampled as in its ELBO, one sample per example from ``rng``), then z₂'s
    (KL(q(z₂ⱼ|z₁) ‖ N(0, 1))); they sum to an estimate of the ELBO's KL, kl1 + kl2.
    """
    supports.diagonal_posterior(model, "evaluate.kl_per_dimension")
    x = _data(model, x)
    if supports.is_hierarchical(model):
        rng = model.rng if rng is None else checks.as_generator(rng, "rng")
        parts = []
        for _, index in minibatches(len(x), batch_size):
            xb = x[index]  # (B, D)
            eps = rng.standard_normal((len(xb), model.noise_dim), dtype=model.dtype)
            parts.append(np.concatenate(model.kl_per_dimension(xb, eps), axis=1))  # (B, Z₁+Z₂)
        return np.concatenate(parts).mean(axis=0, dtype=np.float64)
    mu, logvar = _encode(model, x, _labels(model, y, len(x)))
    return distributions.kl_per_dimension(mu, logvar).mean(axis=0, dtype=np.float64)


def evaluate(model, x, k=5000, rng=None, batch_size=None, threshold=ACTIVE_THRESHOLD, y=None,
             progress=None):
    """Every evaluation number of ``model`` on ``x``, as one dict of plain Python values.

    The ELBO's noise is drawn first, then the log-likelihood's, both from ``rng`` (default:
    the model's own generator). For a CVAE pass the labels y; log p(x) is then log p(x|y).
    progress : passed to ``log_likelihood``, the long part.

    Returns
    -------
    dict: "n" (examples), "k", "elbo", "recon", "kl", "log_likelihood" (mean over x),
    "log_likelihood_se" (its standard error over the examples; NaN for one example),
    "active_units", "kl_per_dim" (list of Z floats; Z₁ + Z₂ for an HVAE; absent for a
    q(z|x) of full covariance, whose KL does not split over the dimensions). For an
    Autoencoder, which has none of these, "n" and "recon" (``reconstruction_error``) only.
    """
    x = _data(model, x)
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    if supports.is_autoencoder(model):
        return {"n": len(x), "recon": reconstruction_error(model, x, batch_size or 1000)}
    result = {"n": len(x), "k": checks.positive_int(k, "k")}
    result.update(elbo(model, x, rng=rng, batch_size=batch_size or 1000, y=y))
    log_p = log_likelihood(model, x, k=k, rng=rng, batch_size=batch_size, y=y,
                           progress=progress)
    result["log_likelihood"] = float(log_p.mean())
    result["log_likelihood_se"] = (float(log_p.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1
                                   else math.nan)
    result["active_units"] = active_units(model, x, threshold, y=y)
    if supports.has_diagonal_posterior(model):  # a full covariance does not split the KL
        result["kl_per_dim"] = [float(v) for v in kl_per_dimension(model, x, y=y, rng=rng)]
    return result
