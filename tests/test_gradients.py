"""Every hand-written derivative against centred finite differences, in float64.

Primitives: relative error < 1e-7. Whole models, every parameter: < 1e-6. A wrong factor, sign or
missing path gives errors of 1e-3 or more, so these tolerances are not close calls (the errors seen
are ~1e-9); they must never be loosened to make a test pass.
"""

import numpy as np
import pytest

from npvae import VAE
from npvae.verify import gradcheck
from npvae.verify.gradcheck import MODEL_TOL, PRIMITIVE_TOL, model_checks, numeric_grad, rel_error

PRIMITIVES = gradcheck.primitive_checks(seed=0) + gradcheck.primitive_checks(seed=1)


@pytest.mark.parametrize("check", PRIMITIVES, ids=lambda c: c.name)
def test_primitive_gradient(check):
    assert check.tol == PRIMITIVE_TOL
    assert check.error < PRIMITIVE_TOL, f"{check.name}: relative error {check.error:.2e}"


def test_every_primitive_is_checked():
    names = {c.name.split()[0] for c in PRIMITIVES}
    from npvae.core.layers import ACTIVATIONS
    assert set(ACTIVATIONS) <= names
    assert {"dense", "clamp", "bernoulli_nll", "gaussian_nll", "gaussian_nll_learned",
            "kl_standard_normal", "gaussian_log_density", "standard_normal_log_density",
            "reparameterize"} <= names


# (VAE kwargs, loss kwargs, K): all three likelihoods, tanh and relu, one and several samples,
# beta ≠ 1, no hidden layer and two, the IWAE objective and free bits.
CASES = [
    (dict(likelihood=lik, activation=act), dict(beta=beta), K)
    for lik in ("bernoulli", "gaussian", "gaussian-learned")
    for act in ("tanh", "relu")
    for K, beta in ((1, 1.0), (3, 0.3))
] + [
    (dict(likelihood=lik, hidden_dims=hidden, activation="tanh"), {}, 2)
    for lik in ("bernoulli", "gaussian", "gaussian-learned")
    for hidden in ((), (7, 5))
] + [
    (dict(likelihood="gaussian", activation=act), {}, 1)
    for act in ("leaky_relu", "sigmoid", "softplus", "identity")
] + [
    (dict(likelihood="bernoulli", activation="tanh"), dict(objective="iwae"), 5),
    (dict(likelihood="gaussian-learned", activation="relu", hidden_dims=(6, 4)),
     dict(objective="iwae"), 3),
    (dict(likelihood="gaussian", activation="tanh"), dict(free_bits=0.3, beta=2.0), 2),
]


def _case_id(case):
    vae_kwargs, loss_kwargs, K = case
    return "-".join([*map(str, vae_kwargs.values()), *map(str, loss_kwargs.values()), f"K{K}"])


@pytest.mark.parametrize("case", CASES, ids=map(_case_id, CASES))
def test_every_parameter_of_small_vae(case):
    vae_kwargs, loss_kwargs, K = case
    model, x, eps = gradcheck.small_model_case(vae_kwargs, K, seed=3)
    if vae_kwargs.get("activation") in ("relu", "leaky_relu"):
        _assert_away_from_kinks(model, x, eps)
    checks = model_checks(model, x, eps, **loss_kwargs)
    assert [c.name for c in checks] == list(model.params)
    for c in checks:
        assert c.error < MODEL_TOL, f"{c.name}: relative error {c.error:.2e}"


def _assert_away_from_kinks(model, x, eps, margin=1e-4):
    """Finite differences across a ReLU kink are wrong by construction: make sure none is near."""
    pre = []
    original = model._act_forward

    def spy(h):
        pre.append(h.copy())
        return original(h)

    model._act_forward = spy
    try:
        model.loss_and_grads(x, eps)
    finally:
        model._act_forward = original
    assert min(np.abs(p).min() for p in pre) > margin


def test_free_bits_case_has_binding_and_free_dimensions():
    """The free-bits gradient check above is only meaningful if both branches occur."""
    from npvae.core.distributions import kl_per_dimension

    model, x, eps = gradcheck.small_model_case(
        dict(likelihood="gaussian", activation="tanh"), 2, seed=3)
    for head in ("mu", "logvar"):  # make dimension 0 nearly the prior, well below the floor
        model.params[f"{head}.W"][:, 0] *= 0.01
        model.params[f"{head}.b"][0] = 0.0
    kl_dim = kl_per_dimension(*model.encode(x)).mean(axis=0)
    assert (kl_dim < 0.1).any() and (kl_dim > 0.1).any()
    for c in model_checks(model, x, eps, free_bits=0.1):
        assert c.error < MODEL_TOL, c.name


def test_logvar_clamp_binding_is_gradient_checked():
    """Push one encoder log-variance far below the clamp: its gradient is exactly zero, and the
    whole model still matches finite differences. (Below, not above: at logvar = +30 the KL
    holds e^30 / 2 ≈ 5e12 nats, and finite differences of such a loss have no digits left.)"""
    model, x, eps = gradcheck.small_model_case(dict(likelihood="gaussian", activation="tanh"), 1)
    model.params["logvar.b"][0] = -80.0  # raw logvar ≈ -80 < -30 for every example
    mu, logvar = model.encode(x)
    assert np.all(logvar[:, 0] == -30.0)
    _, grads, _ = model.loss_and_grads(x, eps)
    assert grads["logvar.b"][0] == 0.0 and np.all(grads["logvar.W"][:, 0] == 0.0)
    for c in model_checks(model, x, eps):
        assert c.error < MODEL_TOL, c.name


def test_decoder_logvar_clamp_binding_is_gradient_checked():
    """Push one pixel's decoder log-variance far above the clamp (+30): the clamped entries
    pass no gradient (exactly zero for that pixel's out_logvar weights), and every parameter
    still matches finite differences. Without the clamp's backward the gradient there would be
    ½ (1 - (x - mean)² e^-30) / (K·B) ≈ 1 / (2·K·B), and this test fails. (Above, not below:
    at -30 the NLL holds (x - mean)² e^30 and finite differences keep no digits.)"""
    model, x, eps = gradcheck.small_model_case(
        dict(likelihood="gaussian-learned", activation="tanh"), 2)
    model.params["out_logvar.b"][0] = 80.0  # logvar_x ≈ 80 > 30 for pixel 0 of every row
    heads, _ = model._decode_forward(model.encode(x)[0])  # the heads before VAE._nll's clamp
    assert np.all(heads[1][:, 0] > 30.0) and np.all(heads[1][:, 1:] < 30.0)  # binds, and not
    _, grads, _ = model.loss_and_grads(x, eps)
    assert grads["out_logvar.b"][0] == 0.0 and np.all(grads["out_logvar.W"][:, 0] == 0.0)
    assert np.all(grads["out_logvar.b"][1:] != 0.0)
    for c in model_checks(model, x, eps):
        assert c.error < MODEL_TOL, c.name


def test_gradcheck_catches_a_wrong_gradient():
    """The checker itself: a deliberately wrong backward (a missing ½) is flagged."""
    from npvae.core import distributions as dist

    model, x, eps = gradcheck.small_model_case(dict(likelihood="gaussian"), 1)
    good = dist.reparameterize_backward

    def wrong(dz, cache):
        dmu, dlogvar = good(dz, cache)
        return dmu, 2 * dlogvar

    import npvae.core.vae as vae_module

    vae_module.reparameterize_backward = wrong
    try:
        errors = {c.name: c.error for c in model_checks(model, x, eps)}
    finally:
        vae_module.reparameterize_backward = good
    assert errors["logvar.b"] > 1e-3 and errors["out.W"] < MODEL_TOL


def test_numeric_grad_and_rel_error():
    x = np.array([1.0, -2.0, 3.0])
    g = numeric_grad(lambda: float((x**3).sum()), x)
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-9)
    assert np.array_equal(x, [1.0, -2.0, 3.0])  # restored
    assert rel_error(g, g) == 0.0 and rel_error(g, -g) == 1.0 and rel_error(0 * g, 0 * g) == 0.0


def test_float32_gradients_agree_with_float64():
    """The float32 training path computes the same gradients as the checked float64 one."""
    model64, x, eps = gradcheck.small_model_case(dict(likelihood="bernoulli"), 1)
    model32 = VAE(6, hidden_dims=(5,), latent_dim=3, dtype=np.float32)
    for k, p in model64.params.items():
        model32.params[k][...] = p
    _, g64, _ = model64.loss_and_grads(x, eps)
    _, g32, _ = model32.loss_and_grads(x.astype(np.float32), eps.astype(np.float32))
    for k in g64:
        assert g32[k].dtype == np.float32
        assert rel_error(g32[k], g64[k]) < 1e-5, k


def test_gradcheck_report_lists_every_check():
    sections = gradcheck.all_checks()
    text = gradcheck.report(sections)
    assert "0 failed" in text
    n = sum(len(cs) for _, cs in sections)
    assert f"{n} gradients checked" in text
    for title, _ in sections:
        assert title in text


def test_mlp_backward_skips_the_inputs_gradient_when_nobody_needs_it():
    """With need_dinput=False (the data's own gradient), the first layer's dx = dy Wᵀ, the
    largest product of the backward, is not computed: None comes back, and the weights'
    gradients are those of need_dinput=True."""
    from npvae.core.layers import mlp_backward, mlp_forward, relu_backward, relu_forward
    rng = np.random.default_rng(0)
    params = {"t.0.W": rng.standard_normal((4, 3)), "t.0.b": rng.standard_normal(3),
              "t.1.W": rng.standard_normal((3, 2)), "t.1.b": rng.standard_normal(2)}
    h, caches = mlp_forward(rng.standard_normal((5, 4)), params, "t", 2, relu_forward)
    dh = rng.standard_normal(h.shape)
    with_dx, without_dx = {}, {}
    assert mlp_backward(dh, caches, with_dx, "t", relu_backward).shape == (5, 4)
    assert mlp_backward(dh, caches, without_dx, "t", relu_backward, need_dinput=False) is None
    for name in params:
        np.testing.assert_array_equal(with_dx[name], without_dx[name])
