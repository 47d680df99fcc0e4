"""The fast twin (Adam's ``fused=True``) against the textbook form it stands beside, and the
loss's kernels against plain forms written out here independently of npvae.

The loss has one form. Its fused Bernoulli twin was removed under issue 26 (on the Intel Xeon
it took 0.48 against the textbook form's 0.40 ms per 128×784 call); the one ``bernoulli_nll``
has since taken its two fast steps, log1p(e) = log(u) + δ and Σ log(u) = log Π u, and is held
here, and in tests/test_distributions.py, to plain forms written independently of npvae.
"""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import npvae
from npvae.core import distributions as dist
from npvae.core import layers
from npvae.core import vae as vae_module


def plain_bernoulli_nll(logits, x):
    """Σ_D logaddexp(0, l) - x·l and 1 / (1 + e^{-l}) - x: another stable form of the same."""
    nll = (np.logaddexp(0, logits) - x * logits).sum(axis=-1)
    with np.errstate(over="ignore"):  # e^{-l} overflows to inf for l < -88 in float32: 1/inf = 0
        probs = 1 / (1 + np.exp(-logits))
    return nll, probs - x


@given(arrays(np.float64, (40, 1), elements=st.floats(-200, 200)),
       arrays(np.float64, (40, 1), elements=st.floats(0, 1)))
def test_bernoulli_nll_matches_the_plain_form(logits, x):
    """Element by element (D = 1), to within float rounding: both forms round intermediates
    as large as |l| (max(l, 0) and x·l, or ½|l| and (½ - x)·l) before they cancel, so they
    agree to a few ulps of |l|, and of log1p(e) ≤ log 2."""
    for dtype in (np.float64, np.float32):
        nll, dlogits = dist.bernoulli_nll(logits.astype(dtype), x.astype(dtype))
        ref_nll, ref_d = plain_bernoulli_nll(logits.astype(dtype), x.astype(dtype))
        assert nll.dtype == dtype and dlogits.dtype == dtype
        tol = np.finfo(dtype).eps * (4 + 4 * np.abs(logits[:, 0]))
        assert np.all(np.abs(nll - ref_nll) <= tol)
        # sigmoid(l) ∈ [0, 1] two ways, then minus x: within a few ulps of 1, absolute
        np.testing.assert_allclose(dlogits, ref_d, rtol=0, atol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_forward_without_gradients_gives_the_same_nll(likelihood):
    rng = np.random.default_rng(0)
    model = npvae.VAE(6, (5,), 3, likelihood=likelihood, dtype=np.float64, seed=0)
    x = rng.random((4, 6))
    eps = rng.standard_normal((2, 4, 3))
    with_grads = model._forward(x, eps)
    without = model._forward(x, eps, need_grad=False)
    np.testing.assert_array_equal(with_grads.nll, without.nll)
    assert all(d is not None for d in with_grads.dnll_dheads)
    assert all(d is None for d in without.dnll_dheads)
    log_w = -with_grads.nll + dist.standard_normal_log_density(with_grads.z)[0] \
        - dist.gaussian_log_density(with_grads.z, with_grads.mu, with_grads.logvar)[0]
    np.testing.assert_array_equal(model.log_weights(x, eps), log_w)


@pytest.mark.parametrize("fused", [False, True])
def test_adam_matches_the_textbook_update_in_float64_to_float32_rounding(fused):
    """npvae's Adam, as written (fused=False) and in Kingma & Ba's efficient order
    p ← p - α·m/(√v + ε̂) (fused=True), against m̂ = m/(1-β₁ᵗ), v̂ = v/(1-β₂ᵗ),
    p ← p - lr·m̂/(√v̂ + eps) in float64, step by step."""
    rng = np.random.default_rng(3)
    p = {"w": rng.standard_normal((50, 40)).astype(np.float32),
         "b": rng.standard_normal(40).astype(np.float32)}
    ref = {k: a.astype(np.float64) for k, a in p.items()}
    m = {k: np.zeros_like(a) for k, a in ref.items()}
    v = {k: np.zeros_like(a) for k, a in ref.items()}
    opt = npvae.Adam(p, lr=1e-3, fused=fused)
    for t in range(1, 31):
        grads = {k: (rng.standard_normal(a.shape) * 10.0 ** rng.integers(-6, 1)).astype(np.float32)
                 for k, a in p.items()}
        opt.step(grads)
        for k in ref:
            g = grads[k].astype(np.float64)
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g**2
            ref[k] = ref[k] - 1e-3 * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    for k in p:
        assert p[k].dtype == np.float32
        # float32 rounding of p, half an ulp per step at most, is the only material difference
        np.testing.assert_allclose(p[k], ref[k], rtol=0, atol=30 * np.spacing(np.float32(5)))
    state = opt.state_dict()
    assert set(state) == {"t", "m.w", "m.b", "v.w", "v.b"}  # the work arrays are not state
    np.testing.assert_allclose(state["v.w"], v["w"], rtol=1e-4, atol=1e-12)


def test_adam_twins_agree_step_by_step_on_a_model():
    """The two forms of Adam from the same state and gradients: within a few float32 ulps of
    each other after 20 steps of a real model, and with the same moments."""
    rng = np.random.default_rng(5)
    a, b = npvae.VAE(8, (6,), 2, seed=0), npvae.VAE(8, (6,), 2, seed=0)
    opt_a, opt_b = npvae.Adam(a.params, lr=1e-2), npvae.Adam(b.params, lr=1e-2, fused=True)
    for _ in range(20):
        x = rng.random((5, 8), np.float32)
        eps = rng.standard_normal((5, 2), np.float32)
        opt_a.step(a.loss_and_grads(x, eps)[1])
        opt_b.step(b.loss_and_grads(x, eps)[1])
    for name in a.params:
        np.testing.assert_allclose(a.params[name], b.params[name], rtol=1e-4, atol=1e-5)
    assert opt_a.state_dict().keys() == opt_b.state_dict().keys()


def test_adam_updates_the_live_parameter_arrays_in_place():
    model = npvae.VAE(8, (6,), 2, seed=0)
    arrays_before = {k: id(a) for k, a in model.params.items()}
    opt = npvae.Adam(model.params)
    _, grads, _ = model.loss_and_grads(np.random.default_rng(0).random((5, 8), np.float32))
    before = {k: a.copy() for k, a in model.params.items()}
    opt.step(grads)
    assert {k: id(a) for k, a in model.params.items()} == arrays_before
    assert all(not np.array_equal(before[k], model.params[k]) for k in before)


def _float32_only(fn, name, seen):
    """Wrap fn so that every float array it returns must be float32."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        stack = [out]
        while stack:
            item = stack.pop()
            if isinstance(item, (tuple, list)):
                stack.extend(item)
            elif isinstance(item, np.ndarray) and item.dtype.kind == "f":
                assert item.dtype == np.float32, f"{name} returned {item.dtype}"
                seen.add(name)
        return out

    return wrapper


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("objective,k", [("elbo", 1), ("elbo", 3), ("iwae", 3)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_no_float64_leaks_in_any_intermediate(monkeypatch, objective, k, likelihood, fused):
    """A debug run: every layer and distribution function the model calls returns float32."""
    seen = set()
    for module in (layers, dist):
        for name in dir(module):
            fn = getattr(module, name)
            if callable(fn) and name.endswith(("_forward", "_backward", "_nll", "_normal",
                                               "_density", "_learned", "_dimension", "sigmoid")):
                for target in (vae_module, layers):  # the loss's calls, and mlp_forward's
                    if hasattr(target, name):
                        monkeypatch.setattr(target, name, _float32_only(fn, name, seen))
    for name, (fwd, bwd) in layers.ACTIVATIONS.items():
        monkeypatch.setitem(layers.ACTIVATIONS, name, (_float32_only(fwd, name, seen),
                                                       _float32_only(bwd, name, seen)))
    model = npvae.VAE(10, (7, 5), 3, likelihood=likelihood, seed=1)
    x = np.random.default_rng(1).random((6, 10), dtype=np.float32)
    loss, grads, stats = model.loss_and_grads(x, objective=objective, k=k)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.log_weights(x, np.zeros((2, 6, 3), np.float32)).dtype == np.float32
    opt = npvae.Adam(model.params, weight_decay=1e-4, fused=fused)
    opt.step(grads)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert {"dense_forward", "dense_backward", "reparameterize_backward", "relu"} <= seen
