"""The hierarchical VAE: every parameter against finite differences, its importance weights
against its loss, and its log-likelihood against the exact marginal of a linear-Gaussian model."""

import numpy as np
import pytest
import scipy.stats

import npvae
from npvae.study import evaluate
from npvae.verify.gradcheck import MODEL_TOL, model_checks


def _case(likelihood="bernoulli", hidden=(5,), activation="tanh", K=2, seed=0):
    model = npvae.HVAE(6, hidden_dims=hidden, latent_dims=(3, 2), likelihood=likelihood,
                       activation=activation, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = ((rng.uniform(size=(4, 6)) < 0.5).astype(float) if likelihood == "bernoulli"
         else rng.standard_normal((4, 6)))
    return model, x, rng.standard_normal((K, 4, 5))  # eps: (K, B, Z₁ + Z₂)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("hidden, K", [((5,), 1), ((), 3), ((4, 3), 2)])
def test_every_parameter_of_a_small_hvae(likelihood, hidden, K):
    model, x, eps = _case(likelihood, hidden, K=K)
    checks = model_checks(model, x, eps, beta=0.7)
    assert {"encoder2.0.W", "prior_mu.W", "prior_logvar.b", "mu2.b"} & {c.name for c in checks}
    for c in checks:
        assert c.error < MODEL_TOL, f"{c.name}: {c.error:.2e}"


def test_relu_and_the_pair_form_of_eps():
    model, x, eps = _case(activation="relu", K=1, seed=3)
    loss_a, grads_a, _ = model.loss_and_grads(x, eps)
    loss_b, grads_b, _ = model.loss_and_grads(x, (eps[..., :3], eps[..., 3:]))
    assert loss_a == loss_b and all(np.array_equal(grads_a[k], grads_b[k]) for k in grads_a)
    for c in model_checks(model, x, eps):
        assert c.error < MODEL_TOL, c.name


def test_the_loss_is_the_mean_of_minus_log_w():
    """E_q[−log w] is the negative ELBO: the loss (top KL in closed form) and the mean of the
    importance weights' −log w (everything sampled) agree up to Monte Carlo error."""
    model, x, _ = _case("gaussian")
    eps = np.random.default_rng(5).standard_normal((100_000, 4, 5))
    minus_log_w = -model.log_weights(x, eps)  # (K, B)
    _, _, stats = model.loss_and_grads(x, eps[:20_000])
    se = minus_log_w.mean(axis=1).std() / np.sqrt(len(eps))
    assert abs(minus_log_w.mean() - stats["loss"]) < 5 * se + 0.02
    assert stats["kl"] == pytest.approx(stats["kl1"] + stats["kl2"])


def test_log_likelihood_matches_the_exact_marginal_of_a_linear_gaussian_hvae():
    """With no hidden layers and prior_logvar.W = 0, z₁ = A z₂ + a + noise and x = z₁ V + b +
    noise are linear-Gaussian: p(x) = N(b + a V, Vᵀ (Aᵀ A + diag e^c) V + σ² I)."""
    model = npvae.HVAE(5, hidden_dims=(), latent_dims=(3, 2), likelihood="gaussian", sigma=0.7,
                       dtype=np.float64, seed=0)
    p = model.params
    p["prior_logvar.W"][...] = 0.0
    p["prior_logvar.b"][...] = np.log([0.5, 0.8, 0.3])
    A, a, V, b = p["prior_mu.W"], p["prior_mu.b"], p["out.W"], p["out.b"]  # (2,3), (3,), (3,5)
    cov_z1 = A.T @ A + np.diag(np.exp(p["prior_logvar.b"]))
    cov_x = V.T @ cov_z1 @ V + 0.49 * np.eye(5)
    x = np.random.default_rng(2).standard_normal((3, 5))
    exact = scipy.stats.multivariate_normal.logpdf(x, b + a @ V, cov_x)
    # Fit the inference networks to these x with the generative side frozen, so that the
    # importance weights are well spread (a random encoder makes the estimate biased low).
    encoder = {k: v for k, v in p.items() if k.startswith(("mu", "logvar", "encoder"))}
    opt, rng = npvae.Adam(encoder, lr=1e-2), np.random.default_rng(0)
    for _ in range(1500):
        _, grads, _ = model.loss_and_grads(x, rng=rng, k=8)
        opt.step({k: grads[k] for k in encoder})
    estimate = evaluate.log_likelihood(model, x, k=20_000, rng=np.random.default_rng(3))
    np.testing.assert_allclose(estimate, exact, atol=0.05)


def test_training_sampling_evaluation_and_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(300, 12)) < np.linspace(0.1, 0.9, 12)).astype(np.float32)
    model = npvae.HVAE(12, hidden_dims=(16,), latent_dims=(4, 2), seed=0)
    history = npvae.train(model, x, epochs=4, batch_size=50, lr=3e-3, x_val=x[:50],
                          verbose=False)
    assert history[-1]["loss"] < history[0]["loss"] and np.isfinite(history[-1]["val_loss"])
    assert model.sample(5).shape == (5, 12) and np.isin(model.sample(5, draw=True), [0, 1]).all()
    (mu1, _), (mu2, _) = model.encode_layers(x[:7])
    assert mu1.shape == (7, 4) and mu2.shape == (7, 2)
    result = evaluate.elbo(model, x[:50], rng=np.random.default_rng(1))
    assert result["elbo"] < evaluate.log_likelihood(model, x[:50], k=50).mean() + 1.0
    again = npvae.load(npvae.save(tmp_path / "hvae.npz", model))
    assert type(again) is npvae.HVAE and again.latent_dims == (4, 2)
    np.testing.assert_array_equal(again.encode(x[:3])[0], model.encode(x[:3])[0])


def test_what_the_hvae_does_not_do_is_refused():
    model, x, eps = _case()
    for kwargs in (dict(objective="iwae"), dict(free_bits=0.5)):
        with pytest.raises(ValueError, match="the HVAE trains on the ELBO only"):
            model.loss_and_grads(x, eps, **kwargs)
    with pytest.raises(ValueError, match="latent_dims must be"):
        npvae.HVAE(6, latent_dims=4)


def test_the_cli_trains_and_evaluates_an_hvae(tmp_path, capsys, monkeypatch):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_cli import TINY, fake_mnist
    from npvae.run import cli
    from npvae.run import data
    monkeypatch.setattr(data, "MIRRORS", {name: [] for name in data.DATASETS})
    data_dir = fake_mnist(tmp_path / "data", n_train=300, n_test=60)
    out = tmp_path / "run"
    tiny = [a for a in TINY if a not in ("--latent-dim", "2")]
    assert cli.main(["train", "--data-dir", str(data_dir), *tiny, "--latent-dims", "3", "2",
                     "--epochs", "2", "--eval-k", "5", "--quiet", "--out", str(out)]) == 0
    model = npvae.load(out)
    assert type(model) is npvae.HVAE and model.latent_dims == (3, 2)
    assert cli.main(["evaluate", str(out), "--k", "5", "--data-dir", str(data_dir)]) == 0
    printed = capsys.readouterr().out
    assert "KL per layer" in printed and "z₂" in printed
    assert cli.main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    for bad in (["--conditional"], ["--latent-dim", "5"]):
        assert cli.main(["train", "--latent-dims", "3", "2", *bad, "--out",
                         str(tmp_path / "bad")]) == 2
