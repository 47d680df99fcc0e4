"""Adam and SGD against their recurrences, written out here independently of npvae.core.optim."""

import numpy as np
import pytest

from npvae import SGD, Adam
from npvae.core import optim


def test_adam_first_step_is_lr_times_sign():
    p = {"w": np.array([1.0, -2.0, 3.0, 0.5])}
    g = np.array([0.3, -4.0, 1e-3, 0.0])
    start = p["w"].copy()
    Adam(p, lr=0.01).step({"w": g})
    np.testing.assert_allclose(p["w"], start - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14)


def test_adam_matches_its_recurrence_over_several_steps_with_changing_lr():
    rng = np.random.default_rng(0)
    p = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    ref = {k: v.copy() for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    b1, b2, eps, wd = 0.8, 0.99, 1e-6, 0.01
    opt = Adam(p, lr=0.1, betas=(b1, b2), epsilon=eps, weight_decay=wd)
    for t in range(1, 6):
        lr = 0.1 / t
        opt.lr = lr
        grads = {k: rng.standard_normal(x.shape) for k, x in p.items()}
        opt.step(grads)
        for k in ref:
            g = grads[k] + wd * ref[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g**2
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            ref[k] = ref[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
            np.testing.assert_allclose(p[k], ref[k], rtol=1e-12, atol=1e-14)
    assert opt.t == 5


def test_adam_minimises_a_badly_scaled_quadratic():
    """f(w) = ½ Σ a_i w_i² with curvatures from 1e-3 to 1e3: Adam's per-coordinate scaling copes."""
    a = np.logspace(-3, 3, 7)
    p = {"w": np.ones(7)}
    opt = Adam(p, lr=0.05)
    for _ in range(2000):
        opt.step({"w": a * p["w"]})
    assert 0.5 * (a * p["w"] ** 2).sum() < 1e-6 * 0.5 * a.sum()


def test_adam_keeps_float32():
    p = {"w": np.ones((3, 3), np.float32)}
    opt = Adam(p, lr=1e-3, weight_decay=0.1)
    for _ in range(3):
        opt.step({"w": np.full((3, 3), 0.5, np.float32)})
    assert p["w"].dtype == np.float32
    assert all(a.dtype == np.float32 for k, a in opt.state_dict().items() if k != "t")


def test_optimizer_state_round_trips_as_plain_arrays():
    rng = np.random.default_rng(1)
    grads = [{"w": rng.standard_normal(4)} for _ in range(6)]
    p1 = {"w": np.zeros(4)}
    opt1 = Adam(p1, lr=0.1)
    for g in grads[:3]:
        opt1.step(g)
    state = opt1.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert set(state) == {"t", "m.w", "v.w"}
    p2 = {"w": p1["w"].copy()}
    opt2 = Adam(p2, lr=0.1)
    opt2.load_state_dict(state)
    for g in grads[3:]:
        opt1.step(g)
        opt2.step(g)
    assert np.array_equal(p1["w"], p2["w"]) and opt2.t == 6


def test_sgd_with_and_without_momentum():
    p = {"w": np.array([1.0, 2.0])}
    SGD(p, lr=0.5).step({"w": np.array([1.0, -1.0])})
    np.testing.assert_array_equal(p["w"], [0.5, 2.5])
    p = {"w": np.zeros(1)}
    opt = SGD(p, lr=0.1, momentum=0.9)
    velocity, w = 0.0, 0.0
    for g in (1.0, 2.0, -1.0):
        opt.step({"w": np.array([g])})
        velocity = 0.9 * velocity + g
        w -= 0.1 * velocity
        assert p["w"][0] == pytest.approx(w, rel=1e-15)


def test_optimizer_errors_name_the_problem():
    p = {"w": np.zeros(2)}
    with pytest.raises(ValueError, match="lr must be a positive"):
        Adam(p, lr=0)
    with pytest.raises(ValueError, match="missing.*'w'.*unexpected.*'v'"):
        Adam(p).step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, lr=0.1, momentum=1.0)


@pytest.mark.parametrize("fused", [False, True])
def test_adam_epsilon_matters_where_gradients_are_as_small_as_it(fused):
    """With |g| = ε, the first step is α · g / (|g| + ε) = α / 2: ε is added to √v̂, not
    subtracted (which would divide by ~0) nor dropped (a full step α)."""
    params = {"w": np.zeros(4)}
    opt = Adam(params, lr=0.1, epsilon=1e-8, fused=fused)
    opt.step({"w": np.full(4, 1e-8)})
    np.testing.assert_allclose(params["w"], -0.05, rtol=1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_adam_weight_decay_adds_to_the_gradient(fused):
    """weight_decay λ: the step uses g + λθ (L2, as torch.optim.Adam); the first step is
    α · (g + λθ) / (|g + λθ| + ε), whose sign follows g + λθ."""
    params = {"w": np.array([1.0, -2.0, 3.0])}
    opt = Adam(params, lr=0.1, weight_decay=0.5, fused=fused)
    opt.step({"w": np.array([0.2, 2.0, -2.0])})  # g + λθ = [0.7, 1.0, -0.5]
    np.testing.assert_allclose(params["w"], [0.9, -2.1, 3.1], rtol=1e-6)


def test_the_two_adams_agree_with_weight_decay_over_many_steps():
    rng = np.random.default_rng(0)
    start = rng.standard_normal((3, 4))
    a, b = {"w": start.copy()}, {"w": start.copy()}
    opts = [Adam(a, lr=0.01, weight_decay=0.1), Adam(b, lr=0.01, weight_decay=0.1, fused=True)]
    for _ in range(20):
        g = rng.standard_normal((3, 4))
        for opt in opts:
            opt.step({"w": g})
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-12, atol=1e-14)


def test_sgd_counts_its_steps():
    params = {"w": np.zeros(2)}
    opt = SGD(params, lr=0.1, momentum=0.5)
    for _ in range(3):
        opt.step({"w": np.ones(2)})
    assert opt.t == 3 and int(opt.state_dict()["t"]) == 3


# Subnormal state (issue 26): decayed moments are flushed to zero every FLUSH_EVERY steps.

def _subnormal_count(arrays):
    """How many entries of the arrays are nonzero and below their dtype's smallest normal."""
    return sum(int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).smallest_normal)))
               for a in arrays)


def _state_arrays(opt):
    return [a for k, a in opt.state_dict().items() if k != "t"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fused", [False, True])
def test_adam_state_holds_no_subnormal_after_many_zero_gradients(dtype, fused):
    """A parameter whose gradient is zero for many steps (a border pixel's weights): its m and
    v decay by β₁ and β₂ a step. Started just above the smallest normal float, both decay
    into the subnormal range within a few steps (checked against the recurrence without the
    flush); at every multiple of FLUSH_EVERY, the optimizer's state holds none."""
    tiny = np.finfo(dtype).smallest_normal
    params = {"w": np.ones(6, dtype), "b": np.ones(2, dtype)}
    opt = Adam(params, lr=1e-3, fused=fused)
    opt.load_state_dict({"t": np.array(10), "m.w": np.full(6, -2 * tiny, dtype),
                         "v.w": np.full(6, 1.001 * tiny, dtype), "m.b": np.zeros(2, dtype),
                         "v.b": np.zeros(2, dtype)})
    zero = {"w": np.zeros(6, dtype), "b": np.zeros(2, dtype)}
    steps = 3 * optim.FLUSH_EVERY - opt.t % optim.FLUSH_EVERY  # ends on a flush step
    m_ref, v_ref = -2 * tiny * 0.9 ** np.arange(1, steps + 1), 1.001 * tiny * 0.999 ** np.arange(
        1, steps + 1)
    assert (np.abs(m_ref[-1]) < tiny) and (v_ref[-1] < tiny)  # would be subnormal unflushed
    assert dtype(m_ref[-1]) != 0 and dtype(v_ref[-1]) != 0
    for _ in range(steps):
        opt.step(zero)
        if opt.t % optim.FLUSH_EVERY == 0:
            assert _subnormal_count(_state_arrays(opt)) == 0, opt.t
    assert opt.t % optim.FLUSH_EVERY == 0
    assert np.all(opt.state_dict()["m.w"] == 0) and np.all(opt.state_dict()["v.w"] == 0)
    assert np.all(params["w"] == 1) and params["w"].dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_momentum_holds_no_subnormal_velocity(dtype):
    """SGD with momentum 0.9 after one gradient and then zeros: the velocity decays by 0.9 a
    step (as its recurrence, computed here in the same dtype, says), into the subnormal range;
    at the multiple of FLUSH_EVERY it is zero."""
    tiny = np.finfo(dtype).smallest_normal
    params = {"w": np.zeros(3, dtype)}
    opt = SGD(params, lr=0.1, momentum=0.9)
    velocity = np.full(3, 4 * tiny, dtype)
    opt.step({"w": velocity.copy()})
    for _ in range(optim.FLUSH_EVERY - 1):
        opt.step({"w": np.zeros(3, dtype)})
        velocity *= dtype(0.9)
        if opt.t % optim.FLUSH_EVERY:
            np.testing.assert_array_equal(opt.state_dict()["velocity.w"], velocity)
    assert opt.t == optim.FLUSH_EVERY
    assert np.all((0 < velocity) & (velocity < tiny))  # subnormal, had it not been flushed
    assert np.all(opt.state_dict()["velocity.w"] == 0)


@pytest.mark.parametrize("fused", [False, True])
def test_adam_decays_real_moments_into_zero_not_subnormals_in_float32(fused):
    """From a real gradient, then zeros: float32 m falls below 1.2e-38 after ~790 steps of β₁
    and then sticks at a subnormal (β₁·x rounds back to x); with the flush it ends at 0."""
    params = {"w": np.zeros(4, np.float32)}
    opt = Adam(params, lr=1e-3, fused=fused)
    opt.step({"w": np.full(4, 1e-3, np.float32)})
    zero = {"w": np.zeros(4, np.float32)}
    while opt.t < 1000:
        opt.step(zero)
    m = opt.state_dict()["m.w"]
    assert np.all(m == 0), m
    unflushed = np.float32(1e-4)  # the same recurrence, in float32, without the flush
    for _ in range(999):
        unflushed *= np.float32(0.9)
    assert 0 < unflushed < np.finfo(np.float32).smallest_normal


def test_the_flush_changes_no_normal_range_trajectory():
    """Over 3·FLUSH_EVERY steps of normal-range gradients, Adam with the flush is bit for bit
    Adam without it (a flush at every step, and none at all), in both forms."""
    rng = np.random.default_rng(3)
    grads = [{"w": rng.standard_normal((4, 5)).astype(np.float32)}
             for _ in range(3 * optim.FLUSH_EVERY)]
    for fused in (False, True):
        finals = []
        for every in (optim.FLUSH_EVERY, 1, 10**9):
            params = {"w": np.ones((4, 5), np.float32)}
            opt = Adam(params, lr=1e-2, fused=fused)
            old, optim.FLUSH_EVERY = optim.FLUSH_EVERY, every
            try:
                for g in grads:
                    opt.step(g)
            finally:
                optim.FLUSH_EVERY = old
            finals.append(params["w"])
        assert np.array_equal(finals[0], finals[1]) and np.array_equal(finals[0], finals[2])


def test_flush_subnormals_keeps_normals_signs_and_zeros():
    for dtype in (np.float32, np.float64):
        tiny = np.finfo(dtype).smallest_normal
        a = np.array([tiny, -tiny, tiny / 2, -tiny / 4, 0.0, 1.0, -3.5, np.inf], dtype)
        optim.flush_subnormals(a)
        np.testing.assert_array_equal(a, np.array([tiny, -tiny, 0, 0, 0, 1, -3.5, np.inf], dtype))


@pytest.mark.parametrize("fused", [False, True])
def test_the_flush_runs_every_flush_every_steps_and_no_more(fused, monkeypatch):
    """A flush costs 40 % of a fused Adam step (docs/performance.md): it must run at steps
    FLUSH_EVERY, 2·FLUSH_EVERY, …, once per parameter, and at no other step."""
    calls = []
    real = optim.flush_subnormals
    monkeypatch.setattr(optim, "flush_subnormals", lambda *a: calls.append(1) or real(*a))
    params = {"w": np.ones(3, np.float32), "b": np.ones(2, np.float32)}
    opt = Adam(params, lr=1e-3, fused=fused)
    grads = {"w": np.ones(3, np.float32), "b": np.ones(2, np.float32)}
    for _ in range(2 * optim.FLUSH_EVERY + 1):
        opt.step(grads)
    assert len(calls) == 2 * len(params)
