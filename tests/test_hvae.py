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


def _linear_hvae_whose_samples_are_z1():
    """A linear-Gaussian HVAE whose decoder mean is z₁ itself (out.W = I, out.b = 0), so that
    ``sample`` returns the draws z₁ ~ p(z₁|z₂): z₁ = A z₂ + a + e^{c/2} · noise with a known
    log-variance c (prior_logvar.W = 0), and z₂ ~ N(0, I)."""
    model = npvae.HVAE(3, hidden_dims=(), latent_dims=(3, 2), likelihood="gaussian",
                       dtype=np.float64, seed=4)
    p = model.params
    p["prior_logvar.W"][...] = 0.0
    p["prior_logvar.b"][...] = np.log([0.25, 4.0, 9.0])  # std 0.5, 2, 3: never e^c = e^{c/2}
    p["prior_mu.b"][...] = [1.0, -2.0, 0.5]
    p["out.W"][...], p["out.b"][...] = np.eye(3), 0.0
    return model


def test_ancestral_samples_have_the_prior_networks_mean_and_covariance():
    """z₁ | z₂ ~ N(A z₂ + a, diag e^c): the sampler's standard deviation is e^{c/2}, not the
    variance e^c (the trap the style guide names). Over z₂ ~ N(0, I), the samples' mean is a
    and their covariance Aᵀ A + diag e^c."""
    model = _linear_hvae_whose_samples_are_z1()
    p, n = model.params, 200_000
    samples = model.sample(n, rng=np.random.default_rng(0))  # (n, 3): z₁ itself
    cov = p["prior_mu.W"].T @ p["prior_mu.W"] + np.diag(np.exp(p["prior_logvar.b"]))
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(samples.mean(axis=0) - p["prior_mu.b"]), 5 * se_mean)
    # The sample covariance's relative standard error is about √(2/n) ≈ 0.3% on the diagonal.
    np.testing.assert_allclose(np.cov(samples.T), cov, rtol=0.03, atol=0.03 * np.sqrt(
        np.outer(np.diag(cov), np.diag(cov))).max())
    # Given z₂ (prior_mu.W = 0 makes the mean the same for every z₂), the spread of z₁ is the
    # prior network's e^{logvar_p / 2}.
    p["prior_mu.W"][...] = 0.0
    samples = model.sample(n, rng=np.random.default_rng(1))
    np.testing.assert_allclose(samples.std(axis=0), [0.5, 2.0, 3.0], rtol=0.01)


def test_ancestral_sampling_draws_z2_then_z1_from_the_generator():
    """The exact draws, rebuilt from the same generator: z₂ first, then the noise of z₁,
    z₁ = mu_p + e^{logvar_p / 2} · noise, then the decoder's mean (or, with draw=True, x)."""
    model, _, _ = _case("gaussian-learned", hidden=(4,))
    got = model.sample(7, rng=np.random.default_rng(9))
    rng = np.random.default_rng(9)
    z2 = rng.standard_normal((7, 2))
    mu_p, logvar_p = model._gaussian_forward(z2, "prior", "prior_mu", "prior_logvar")[:2]
    z1 = mu_p + np.sqrt(np.exp(logvar_p)) * rng.standard_normal((7, 3))
    np.testing.assert_allclose(got, model.decode(z1), rtol=1e-12)
    drawn = model.sample(7, rng=np.random.default_rng(9), draw=True)
    rng = np.random.default_rng(9)
    rng.standard_normal((7, 2)), rng.standard_normal((7, 3))
    np.testing.assert_allclose(drawn, model.decode(z1, draw=True, rng=rng), rtol=1e-12)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian-learned"])
def test_each_of_k_samples_is_scored_against_its_own_example(likelihood):
    """With K > 1, row k·B + b is sample k of example b: its NLL equals a K = 1 computation on
    example b alone with that sample's eps, and the loss and gradients are the mean over k of
    the K = 1 losses and gradients (every term of the HVAE's loss is per sample)."""
    model, x, eps = _case(likelihood, hidden=(4,), K=3)
    x[1] = 1 - x[1] if likelihood == "bernoulli" else x[1] + 2.0  # no two rows alike
    nll = model.nll(x, eps)  # (K, B)
    assert nll.shape == (3, 4)
    for k in range(3):
        for b in range(4):
            alone = model.nll(x[b:b + 1], eps[k, b:b + 1])  # (1,)
            assert nll[k, b] == pytest.approx(alone[0], rel=1e-12), (k, b)
    log_w = model.log_weights(x, eps)
    for k in range(3):
        np.testing.assert_allclose(log_w[k], model.log_weights(x, eps[k:k + 1])[0], rtol=1e-12)
    loss, grads, stats = model.loss_and_grads(x, eps, beta=0.7)
    singles = [model.loss_and_grads(x, eps[k], beta=0.7) for k in range(3)]
    assert loss == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-12)
    for key in ("recon", "kl1", "kl2"):
        assert stats[key] == pytest.approx(np.mean([s[2][key] for s in singles]), rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(g, np.mean([s[1][name] for s in singles], axis=0),
                                   rtol=1e-10, atol=1e-14, err_msg=name)


def test_elbo_terms_are_the_losss_terms_per_example():
    """elbo_terms gives, per example, the NLL and both layers' KL term at one sample: their
    batch means are the loss's "recon" and "kl" (= kl1 + kl2) with the same eps."""
    model, x, eps = _case("gaussian", K=1)
    nll, kl = model.elbo_terms(x, eps[0])
    _, _, stats = model.loss_and_grads(x, eps[0])
    assert nll.shape == kl.shape == (4,)
    assert nll.mean() == pytest.approx(stats["recon"], rel=1e-12)
    assert kl.mean() == pytest.approx(stats["kl"], rel=1e-12)
