"""The importance-weighted bound (Burda et al. 2016): its gradient, its value at K = 1, and its
growth with K. log w = log p(x|z) + log p(z) - log q(z|x), never with the analytic KL inside."""

import math

import numpy as np
import pytest

from npvae import VAE
from npvae.verify import gradcheck
from npvae.verify.gradcheck import MODEL_TOL, model_checks
from npvae.core.vae import logsumexp

LOG_2PI = math.log(2 * math.pi)


@pytest.mark.parametrize("vae_kwargs, K", [
    (dict(likelihood="bernoulli", activation="tanh"), 1),
    (dict(likelihood="gaussian", activation="softplus", sigma=0.8), 2),
    (dict(likelihood="gaussian-learned", activation="tanh", hidden_dims=()), 4),
    (dict(likelihood="bernoulli", activation="sigmoid", hidden_dims=(5, 4)), 7),
])
def test_iwae_gradient_with_eps_fixed(vae_kwargs, K):
    model, x, _ = gradcheck.small_model_case(vae_kwargs, 1, seed=5)
    eps = np.random.default_rng(6).standard_normal((K, *x.shape[:1], model.latent_dim))
    checks = model_checks(model, x, eps, objective="iwae")
    assert [c.name for c in checks] == list(model.params)
    for c in checks:
        assert c.error < MODEL_TOL, f"K={K} {c.name}: relative error {c.error:.2e}"


def test_iwae_gradient_is_the_weighted_sum_of_per_sample_gradients():
    """A plain reference, one sample at a time: ∇loss = -(1/B) Σ_b Σ_k w̃_kb ∇ log w_kb, with
    w̃_kb = w_kb / Σ_k' w_k'b. Each ∇(-log w_kb) is the K = 1 bound of example b alone."""
    model, x, _ = gradcheck.small_model_case(dict(likelihood="gaussian-learned",
                                                  activation="tanh"), 1, seed=2, B=3)
    K, B = 4, 3
    eps = np.random.default_rng(3).standard_normal((K, B, model.latent_dim))
    loss, grads, _ = model.loss_and_grads(x, eps, objective="iwae")

    log_w = model.log_weights(x, eps)  # (K, B)
    ref_loss = 0.0
    ref = {name: np.zeros_like(p) for name, p in model.params.items()}
    for b in range(B):
        top = max(log_w[k, b] for k in range(K))
        total = sum(math.exp(log_w[k, b] - top) for k in range(K))
        ref_loss -= (top + math.log(total / K)) / B
        for k in range(K):
            w_tilde = math.exp(log_w[k, b] - top) / total
            _, g, _ = model.loss_and_grads(x[b:b + 1], eps[k:k + 1, b:b + 1], objective="iwae")
            for name in ref:
                ref[name] += w_tilde / B * g[name]  # g = ∇(-log w_kb)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(g, ref[name], rtol=1e-9, atol=1e-13, err_msg=name)


def _single_sample_elbo(model, x, eps):
    """log p(x|z) + log p(z) - log q(z|x) at z = mu + e^{logvar/2} eps, from the model's encoder
    and decoder but with every density written out here (Bernoulli decoder): (B,)."""
    mu, logvar = model.encode(x)
    z = mu + np.exp(logvar / 2) * eps
    p = model.decode(z)  # σ(logits)
    log_px = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)
    log_pz = -0.5 * (z**2 + LOG_2PI).sum(axis=1)
    log_qz = -0.5 * (eps**2 + logvar + LOG_2PI).sum(axis=1)  # (z - mu)² / σ² = eps²
    return log_px + log_pz - log_qz


def test_iwae_with_k1_is_the_single_sample_elbo_estimate():
    rng = np.random.default_rng(0)
    model = VAE(8, hidden_dims=(6,), latent_dim=3, activation="tanh", dtype=np.float64, seed=1)
    x, eps = rng.uniform(size=(5, 8)), rng.standard_normal((5, 3))
    expected = -_single_sample_elbo(model, x, eps).mean()
    assert model.loss_and_grads(x, eps, objective="iwae")[0] == pytest.approx(expected, rel=1e-12)
    assert model.loss_and_grads(x, eps[None], objective="iwae")[0] == pytest.approx(expected,
                                                                                     rel=1e-12)


def test_k1_bound_averages_to_the_closed_form_elbo():
    """E_eps[-log w] = -ELBO: over many draws, the K = 1 bound and the ELBO with the analytic KL
    (same eps, so their reconstructions cancel) agree within Monte Carlo error. Draw by draw
    they differ (a sampled KL against the closed form): an IWAE whose weights used the analytic
    KL would make every difference exactly 0."""
    rng = np.random.default_rng(7)
    model = VAE(8, hidden_dims=(6,), latent_dim=3, activation="tanh", dtype=np.float64, seed=2)
    model.params["mu.b"][:] = [0.8, -0.5, 0.3]  # a posterior well away from the prior
    model.params["logvar.b"][:] = [-1.0, 0.5, -0.3]
    x = rng.uniform(size=(6, 8))
    N = 400
    diffs = np.empty(N)
    for n in range(N):
        eps = rng.standard_normal((6, 3))
        diffs[n] = (model.loss_and_grads(x, eps, objective="iwae")[0]
                    - model.loss_and_grads(x, eps)[0])
    se = diffs.std(ddof=1) / math.sqrt(N)
    assert diffs.std() > 0.1  # different estimators of the same number
    assert abs(diffs.mean()) < 4 * se, (diffs.mean(), se)


def test_iwae_bound_grows_with_k():
    """L_K = E log (1/K) Σ_k w_k is non-decreasing in K (Burda et al. 2016, theorem 1). Each L_K
    is estimated from its own independent draws; consecutive values may not decrease by more
    than 4 standard errors of their difference, and the whole climb from K = 1 to K = 20 must be
    significant, or the test would have no power."""
    rng = np.random.default_rng(11)
    model = VAE(10, hidden_dims=(8,), latent_dim=3, activation="tanh", dtype=np.float64, seed=3)
    B, N = 6, 1500
    x = (rng.uniform(size=(B, 10)) < 0.4).astype(np.float64)
    means, ses = [], []
    for K in (1, 2, 5, 20):
        eps = rng.standard_normal((N * K, B, 3))
        log_w = model.log_weights(x, eps).reshape(N, K, B)
        bound = (logsumexp(log_w, axis=1) - math.log(K)).mean(axis=1)  # (N,): one draw each
        means.append(bound.mean())
        ses.append(bound.std(ddof=1) / math.sqrt(N))
    for i in range(len(means) - 1):
        assert means[i + 1] > means[i] - 4 * math.hypot(ses[i], ses[i + 1]), (means, ses)
    assert means[-1] - means[0] > 4 * math.hypot(ses[0], ses[-1]), (means, ses)


def _far_from_the_data(dtype, seed=0):
    """A Gaussian decoder with sigma = 0.05 and x three units from its mean: log w ~ -1e4 with
    a spread of thousands of nats between samples, except that samples 0 and 1 of each example
    are close (eps 1e-3 apart), so that their normalised weights are neither 0 nor 1."""
    model = VAE(6, hidden_dims=(5,), latent_dim=3, likelihood="gaussian", sigma=0.05,
                activation="tanh", dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = 3 + rng.standard_normal((3, 6))
    eps = rng.standard_normal((4, 3, 3))
    eps[1] = eps[0] + 1e-3 * rng.standard_normal((3, 3))
    return model, x.astype(dtype), eps.astype(dtype)


def _weighted_reference(model, x, eps):
    """The bound and its gradient one sample at a time, in float64: -(1/B) Σ_b log (1/K) Σ_k
    w_kb with the log-sum taken as top + log Σ e^{log w - top}, and Σ_kb (w̃_kb / B) ∇(-log
    w_kb), each ∇(-log w_kb) the K = 1 bound of example b alone."""
    K, B, _ = eps.shape
    log_w = model.log_weights(x, eps)  # (K, B)
    loss, grads = 0.0, {name: np.zeros_like(p) for name, p in model.params.items()}
    for b in range(B):
        top = max(log_w[:, b])
        total = sum(math.exp(log_w[k, b] - top) for k in range(K))
        loss -= (top + math.log(total / K)) / B
        for k in range(K):
            _, g, _ = model.loss_and_grads(x[b:b + 1], eps[k:k + 1, b:b + 1], objective="iwae")
            for name in grads:
                grads[name] += math.exp(log_w[k, b] - top) / total / B * g[name]
    return log_w, loss, grads


def test_iwae_weights_are_exact_when_log_w_is_minus_ten_thousand():
    """The weights w̃ = softmax_K(log w) are computed shifted by the largest log w: at log w ~
    -1e4, e^{log w} is 0 in any float, and shifted by the smallest instead, e^{spread} is inf.
    The bound and its gradient match the one-sample-at-a-time reference in float64, and stay
    finite and close to it in float32."""
    model, x, eps = _far_from_the_data(np.float64)
    log_w, ref_loss, ref_grads = _weighted_reference(model, x, eps)
    assert log_w.max() < -5000 and (log_w.max(axis=0) - log_w.min(axis=0)).min() > 1000
    w_tilde_0 = np.exp(log_w[0] - np.logaddexp(log_w[0], log_w[1]))
    assert ((w_tilde_0 > 0.01) & (w_tilde_0 < 0.99)).any()  # a weight strictly inside (0, 1)
    with np.errstate(all="ignore"):  # the values alone must show a wrong shift
        loss, grads, _ = model.loss_and_grads(x, eps, objective="iwae")
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=1e-8, atol=1e-10, err_msg=name)

    model32, x32, eps32 = _far_from_the_data(np.float32)
    with np.errstate(all="ignore"):
        loss32, grads32, _ = model32.loss_and_grads(x32, eps32, objective="iwae")
    assert np.isfinite(loss32) and all(np.isfinite(g).all() for g in grads32.values())
    model.params = {name: p.astype(np.float64) for name, p in model32.params.items()}
    loss64, grads64, _ = model.loss_and_grads(x32.astype(np.float64), eps32.astype(np.float64),
                                              objective="iwae")
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    for name, g in grads32.items():
        scale = np.abs(grads64[name]).max()
        np.testing.assert_allclose(g, grads64[name], atol=1e-4 * scale, err_msg=name)
