"""The plain autoencoder: its hand-written backward against finite differences, its loss
against squared error, and training, saving and loading like the VAE."""

import math

import numpy as np
import pytest

import npvae
from npvae.verify import gradcheck
from npvae.verify.gradcheck import MODEL_TOL, model_checks


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("hidden", [(), (5,), (7, 4)])
def test_every_parameter_of_a_small_autoencoder(likelihood, hidden):
    model, x, eps = gradcheck.small_model_case(
        dict(likelihood=likelihood, activation="tanh", hidden_dims=hidden), 1, seed=2,
        model_cls=npvae.Autoencoder)
    checks = model_checks(model, x, eps)
    assert [c.name for c in checks] == list(model.params)
    assert "code.W" in model.params and "mu.W" not in model.params
    for c in checks:
        assert c.error < MODEL_TOL, f"{c.name}: {c.error:.2e}"


def test_the_gaussian_loss_is_squared_error_plus_a_constant():
    model = npvae.Autoencoder(6, hidden_dims=(5,), latent_dim=2, likelihood="gaussian",
                              sigma=0.5, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 6))
    loss, _, stats = model.loss_and_grads(x)
    squared = ((x - model.reconstruct(x)) ** 2).sum(axis=1).mean()
    assert loss == pytest.approx(squared / (2 * 0.25) + 3 * math.log(2 * math.pi * 0.25))
    assert stats["kl"] == 0.0 and stats["recon"] == loss


def test_the_backward_breaks_when_a_path_is_cut(monkeypatch):
    """The check is sensitive: dropping the code head's gradient is caught."""
    import npvae.models.autoencoder as ae
    model, x, eps = gradcheck.small_model_case(dict(likelihood="bernoulli"), 1,
                                               model_cls=npvae.Autoencoder)
    good = ae.dense_backward
    monkeypatch.setattr(ae, "dense_backward", lambda dy, cache, need_dx=True: tuple(
        None if g is None else 0.5 * g for g in good(dy, cache, need_dx)))
    errors = {c.name: c.error for c in model_checks(model, x, eps)}
    assert errors["code.W"] > 1e-3 and errors["out.W"] < MODEL_TOL


def test_it_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(200, 12)) < 0.3).astype(np.float32)
    model = npvae.Autoencoder(12, hidden_dims=(16,), latent_dim=2, seed=0)
    history = npvae.train(model, x, epochs=5, batch_size=50, lr=1e-2, verbose=False)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["kl"] == 0.0
    path = npvae.save(tmp_path / "ae.npz", model)
    again = npvae.load(path)
    assert type(again) is npvae.Autoencoder
    np.testing.assert_array_equal(again.encode(x[:5]), model.encode(x[:5]))


def test_what_an_autoencoder_cannot_do_is_refused():
    model = npvae.Autoencoder(6, hidden_dims=(5,), latent_dim=2)
    x = np.full((3, 6), 0.5, np.float32)
    for kwargs in (dict(objective="iwae"), dict(k=3), dict(free_bits=1.0)):
        with pytest.raises(ValueError, match="one deterministic code"):
            model.loss_and_grads(x, **kwargs)
