"""Adam and SGD against their recurrences, written out here independently of npvae.core.optim."""

import numpy as np
import pytest

from npvae import SGD, Adam


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
