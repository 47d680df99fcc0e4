"""The fast twins (``fused=True``) against the textbook forms they stand beside.

Each plain form below is the textbook expression, written out here independently of npvae; the
fast twin, and npvae's own textbook form, must agree with it to within float rounding.
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
    """Σ_D max(l, 0) - x·l + log1p(e^{-|l|}) and σ(l) - x, with np.log1p and np.where."""
    e = np.exp(-np.abs(logits))
    nll = (np.maximum(logits, 0) - x * logits + np.log1p(e)).sum(axis=-1)
    probs = np.where(logits >= 0, 1, e) / (1 + e)
    return nll, probs - x


def ulps(a, b):
    """|a - b| in units in the last place of b."""
    return np.abs(a - b) / np.spacing(np.abs(b).astype(b.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_by_log_and_correction_is_as_accurate_as_log1p(dtype):
    """bernoulli_nll's log(u) + δ, u = 1 + e, δ = e - (u - 1), against np.log1p(e) for e over
    (0, 1]: within 4 ulps, and exactly e where 1 + e rounds to 1 (where log(u) alone gives 0).

    With x = 0 and logits ≤ 0 an element's nll is max(l, 0) - x·l + log1p(e) = log1p(e)."""
    e64 = np.concatenate([np.geomspace(1e-30, 1, 20_000), np.linspace(1e-3, 1, 20_000)])
    logits = np.log(e64).astype(dtype)[:, None]  # (N, 1), ≤ 0
    e = np.exp(-np.abs(logits[:, 0]))  # the e that bernoulli_nll computes
    nll, _ = dist.bernoulli_nll_fused(logits, np.zeros_like(logits))
    assert nll.dtype == dtype
    assert ulps(nll, np.log1p(e)).max() <= 4
    tiny = e < np.finfo(dtype).eps / 4
    assert tiny.any() and np.array_equal(nll[tiny], e[tiny])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1, 2, 3, 7, 784, 1025, 100_000])
def test_sum_log_by_a_folded_product_matches_the_sum_of_logs(D, dtype):
    """Σ_D log(u) as log Π_D u, the product in float64: to within 2 ulps of the float64 sum of
    float64 logs (the plain form), for odd and even D, and without overflow at D = 100,000
    (Π u up to 2^100000 as a whole)."""
    rng = np.random.default_rng(D)
    u = np.concatenate([1 + rng.random((3, D)), np.full((1, D), 2.0), np.ones((1, D))])
    u = u.astype(dtype)  # (5, D): random in [1, 2), all 2 (the largest product), all 1
    plain = np.log(u.astype(np.float64)).sum(axis=-1)
    fast = dist.sum_log(u)
    assert fast.dtype == dtype
    assert np.all(np.abs(fast - plain) <= 2 * np.spacing(plain.astype(dtype)) + 1e-300)
    assert fast[-1] == 0 and np.isclose(fast[-2], D * np.log(2), rtol=4 * np.finfo(dtype).eps)


@given(arrays(np.float64, (40, 1), elements=st.floats(-200, 200)),
       arrays(np.float64, (40, 1), elements=st.floats(0, 1)))
def test_bernoulli_nll_matches_the_plain_form(logits, x):
    """Element by element (D = 1), to within float rounding: both forms round intermediates
    as large as |l| (max(l, 0) and x·l, or ½|l| and (½ - x)·l) before they cancel, so they
    agree to a few ulps of |l|, and of log1p(e) ≤ log 2."""
    for dtype, fused in [(np.float64, True), (np.float32, True), (np.float64, False),
                         (np.float32, False)]:
        nll, dlogits = dist.bernoulli_nll(logits.astype(dtype), x.astype(dtype), fused=fused)
        ref_nll, ref_d = plain_bernoulli_nll(logits.astype(dtype), x.astype(dtype))
        assert nll.dtype == dtype and dlogits.dtype == dtype
        tol = np.finfo(dtype).eps * (4 + 4 * np.abs(logits[:, 0]))
        assert np.all(np.abs(nll - ref_nll) <= tol)
        np.testing.assert_array_equal(dlogits, ref_d)  # sigmoid(l) - x: the same operations


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_forward_without_gradients_gives_the_same_nll(likelihood):
    rng = np.random.default_rng(0)
    model = npvae.VAE(6, (5,), 3, likelihood=likelihood, dtype=np.float64, seed=0)
    x = rng.random((4, 6))
    eps = rng.standard_normal((2, 4, 3))
    with_grads = model._forward(x, None, eps)
    without = model._forward(x, None, eps, need_grad=False)
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
        opt_b.step(b.loss_and_grads(x, eps, fused=True)[1])
    for name in a.params:
        np.testing.assert_allclose(a.params[name], b.params[name], rtol=1e-4, atol=1e-5)
    assert opt_a.state_dict().keys() == opt_b.state_dict().keys()


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("objective,k", [("elbo", 1), ("elbo", 3), ("iwae", 3)])
def test_the_fused_switch_changes_no_number_beyond_rounding(likelihood, objective, k):
    """loss_and_grads and log_weights with fused=True against fused=False, float32."""
    model = npvae.VAE(10, (7,), 3, likelihood=likelihood, seed=2)
    x = np.random.default_rng(2).random((6, 10), dtype=np.float32)
    eps = np.random.default_rng(3).standard_normal((k, 6, 3), dtype=np.float32)
    loss, grads, _ = model.loss_and_grads(x, eps, objective=objective)
    loss_f, grads_f, _ = model.loss_and_grads(x, eps, objective=objective, fused=True)
    assert loss_f == pytest.approx(loss, rel=1e-5)
    for name in grads:
        np.testing.assert_allclose(grads_f[name], grads[name], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.log_weights(x, eps, fused=True), model.log_weights(x, eps),
                               rtol=1e-5)


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
                if hasattr(vae_module, name):
                    monkeypatch.setattr(vae_module, name, _float32_only(fn, name, seen))
    for name, (fwd, bwd) in layers.ACTIVATIONS.items():
        monkeypatch.setitem(layers.ACTIVATIONS, name, (_float32_only(fwd, name, seen),
                                                       _float32_only(bwd, name, seen)))
    model = npvae.VAE(10, (7, 5), 3, likelihood=likelihood, seed=1)
    x = np.random.default_rng(1).random((6, 10), dtype=np.float32)
    loss, grads, stats = model.loss_and_grads(x, objective=objective, k=k, fused=fused)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.log_weights(x, np.zeros((2, 6, 3), np.float32), fused=fused).dtype == np.float32
    opt = npvae.Adam(model.params, weight_decay=1e-4, fused=fused)
    opt.step(grads)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert {"dense_forward", "dense_backward", "reparameterize_backward", "relu"} <= seen
