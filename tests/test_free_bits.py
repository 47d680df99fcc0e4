"""Free bits (Kingma et al. 2016): the KL term is Σ_Z max(λ, KL_Z), KL_Z the batch-mean KL of
latent dimension Z. A floored dimension (KL_Z < λ) contributes the constant λ: no gradient."""

import numpy as np
import pytest

from npvae.verify import gradcheck
from npvae.verify.gradcheck import MODEL_TOL, model_checks

HEAD_COLUMNS = ("mu.W", "mu.b", "logvar.W", "logvar.b")  # parameters of one latent dimension


def _kl_dim(model, x):
    """KL_Z = mean_B ½ (mu² + e^logvar - logvar - 1), written out here: (Z,)."""
    mu, logvar = model.encode(x)
    return (0.5 * (mu**2 + np.exp(logvar) - logvar - 1)).mean(axis=0)


def _case():
    """A float64 model whose 4 latent dimensions have clearly different KLs, and a floor λ
    between them, at least 0.02 nats away from each (finite differences never cross it)."""
    model, x, eps = gradcheck.small_model_case(dict(likelihood="gaussian", activation="tanh"),
                                               2, seed=1, B=5, Z=4)
    model.params["mu.b"][:] = [0.0, 0.3, 0.9, 1.5]
    model.params["mu.W"][:, 0] *= 0.1
    kl = _kl_dim(model, x)
    order = np.sort(kl)
    lam = float(order[1] + order[2]) / 2
    assert np.abs(kl - lam).min() > 0.02
    floored = kl < lam
    assert floored.sum() == 2, kl  # two dimensions bind at the floor, two do not
    return model, x, eps, lam, floored


@pytest.mark.parametrize("beta", [1.0, 0.6])
def test_free_bits_gradient_with_binding_and_free_dimensions(beta):
    model, x, eps, lam, _ = _case()
    checks = model_checks(model, x, eps, free_bits=lam, beta=beta)
    assert [c.name for c in checks] == list(model.params)
    for c in checks:
        assert c.error < MODEL_TOL, f"{c.name}: relative error {c.error:.2e}"


def test_free_bits_value():
    model, x, eps, lam, _ = _case()
    kl = _kl_dim(model, x)
    for beta in (1.0, 0.6):
        loss, _, stats = model.loss_and_grads(x, eps, free_bits=lam, beta=beta)
        assert loss == pytest.approx(stats["recon"] + beta * np.maximum(lam, kl).sum(), rel=1e-12)
        assert stats["kl"] == pytest.approx(kl.sum(), rel=1e-12)  # the true KL, unfloored
    # Every dimension floored: the KL term is the constant Z·λ.
    loss, _, stats = model.loss_and_grads(x, eps, free_bits=10.0)
    assert loss == pytest.approx(stats["recon"] + 4 * 10.0, rel=1e-12)


def test_floored_dimensions_pass_no_kl_gradient():
    """Subtract the reconstruction's gradient (beta = 0): what remains is the KL part. It is
    zero in the columns of the floored dimensions, and the full KL's in the others."""
    model, x, eps, lam, floored = _case()
    recon_only = model.loss_and_grads(x, eps, beta=0.0)[1]
    with_floor = model.loss_and_grads(x, eps, free_bits=lam)[1]
    full_kl = model.loss_and_grads(x, eps)[1]
    for name in HEAD_COLUMNS:
        kl_part = with_floor[name] - recon_only[name]
        assert np.all(kl_part[..., floored] == 0.0), name
        assert np.all(kl_part[..., ~floored] != 0.0), name
        np.testing.assert_allclose(kl_part[..., ~floored],
                                   (full_kl[name] - recon_only[name])[..., ~floored],
                                   rtol=1e-12, atol=1e-15)
    # With every dimension floored, the gradient is the reconstruction's alone.
    all_floored = model.loss_and_grads(x, eps, free_bits=10.0)[1]
    for name, g in all_floored.items():
        np.testing.assert_array_equal(g, recon_only[name])


def test_free_bits_errors():
    model, x, eps, _, _ = _case()
    with pytest.raises(ValueError, match="free_bits must be a finite number ≥ 0"):
        model.loss_and_grads(x, eps, free_bits=-0.1)
    with pytest.raises(ValueError, match="no beta or free bits"):
        model.loss_and_grads(x, eps, free_bits=0.5, objective="iwae")
