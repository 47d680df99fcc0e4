"""Issue 25 §3: the generic study functions handle every model kind correctly or refuse it by
name (``npvae.study.supports``). The Autoencoder trains with validation, evaluates its
reconstruction error and plots what applies to it; the HVAE's KL is each layer's against its
own prior."""

import sys
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.run import cli
from npvae.run import plots
from npvae.study import evaluate, inference, ppca

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import fake_mnist  # noqa: E402


def _x(n=40, D=12, seed=0):
    return np.random.default_rng(seed).random((n, D))


def _hvae(D=12, seed=0, hidden_dims=(8,), **kw):
    return npvae.HVAE(D, hidden_dims, (3, 2), dtype=np.float64, seed=seed, **kw)


# --------------------------------------------------------------------------- the HVAE


def test_elbo_identity_refuses_a_hierarchical_vae():
    hvae = _hvae(likelihood="gaussian", hidden_dims=())
    with pytest.raises(TypeError, match="elbo_identity supports the plain VAE.*not a HVAE"):
        ppca.elbo_identity(hvae, _x())


def test_elbo_identity_refuses_a_cvae_without_telling_it_to_pass_y():
    cvae = npvae.CVAE(12, 3, hidden_dims=(), latent_dim=2, likelihood="gaussian")
    with pytest.raises(TypeError, match="supports the plain VAE") as err:
        ppca.elbo_identity(cvae, _x())
    assert "call it with y" not in str(err.value)


def test_hvae_kl_per_dimension_is_each_layers_kl_against_its_own_prior():
    hvae, x = _hvae(), _x(200)
    kl = evaluate.kl_per_dimension(hvae, x, rng=np.random.default_rng(1))
    assert kl.shape == (5,)  # Z₁ + Z₂
    # The same noise gives the loss's layer terms: the shares add up to kl1 and kl2.
    eps = np.random.default_rng(1).standard_normal((200, 5))
    _, _, stats = hvae.loss_and_grads(x, eps=eps)
    assert kl[:3].sum() == pytest.approx(stats["kl1"], rel=1e-10)
    assert kl[3:].sum() == pytest.approx(stats["kl2"], rel=1e-10)
    # Not KL(q(z₁|x) ‖ N(0, I)): moving the prior network p(z₁|z₂) moves the first layer's KL.
    hvae.params["prior_mu.b"] += 3.0
    moved = evaluate.kl_per_dimension(hvae, x, rng=np.random.default_rng(1))
    assert moved[:3].sum() > kl[:3].sum() + 1
    np.testing.assert_allclose(moved[3:], kl[3:])


def test_hvae_active_units_cover_both_layers():
    hvae, x = _hvae(), _x(100)
    assert evaluate.posterior_mean_variance(hvae, x).shape == (5,)
    assert 0 <= evaluate.active_units(hvae, x, threshold=0.0) == 5


def test_hvae_log_likelihood_from_the_prior_is_the_ancestral_estimate():
    """Was: an eps shape error. Now p(x) ≈ (1/K) Σ p(x|z₁ₖ), z₂ ~ N(0, I), z₁ ~ p(z₁|z₂),
    checked against the same estimator written out here from the model's public pieces."""
    hvae, x = _hvae(), _x(4)
    got = evaluate.log_likelihood(hvae, x, k=4000, rng=np.random.default_rng(2),
                                  proposal="prior")
    rng, K = np.random.default_rng(3), 4000
    z2 = rng.standard_normal((K, 2))
    mu_p, logvar_p, _ = hvae._gaussian_forward(z2, "prior", "prior_mu", "prior_logvar")
    z1 = mu_p + np.exp(logvar_p / 2) * rng.standard_normal((K, 3))  # (K, Z₁)
    p = hvae.decode(z1)  # (K, D) Bernoulli means
    log_px_z = x @ np.log(p).T + (1 - x) @ np.log1p(-p).T  # (N, K)
    expected = np.logaddexp.reduce(log_px_z, axis=1) - np.log(K)
    np.testing.assert_allclose(got, expected, atol=0.05)  # two independent 4000-draw estimates


def test_hvae_evaluate_lists_both_layers_kl():
    hvae, x = _hvae(), _x(30)
    result = evaluate.evaluate(hvae, x, k=5, rng=np.random.default_rng(0))
    assert len(result["kl_per_dim"]) == 5
    assert sum(result["kl_per_dim"]) == pytest.approx(result["kl"], rel=0.5)


# --------------------------------------------------------------------------- the Autoencoder


def _ae(D=12):
    return npvae.Autoencoder(D, (8,), 2, seed=0)


@pytest.mark.parametrize("call, fix", [
    (lambda m, x: evaluate.elbo(m, x), "reconstruction_error"),
    (lambda m, x: evaluate.log_likelihood(m, x, k=3), "reconstruction_error"),
    (lambda m, x: evaluate.kl_per_dimension(m, x), ""),
    (lambda m, x: evaluate.active_units(m, x), ""),
    (lambda m, x: inference.optimize_q(m, x, steps=1), ""),
    (lambda m, x: ppca.elbo_identity(m, x), ""),
])
def test_an_autoencoder_is_refused_by_name_where_it_has_no_q_or_prior(call, fix):
    with pytest.raises(TypeError, match="Autoencoder") as err:
        call(_ae(), _x())
    assert fix in str(err.value)


def test_an_autoencoder_trains_with_validation_and_saves(tmp_path):
    ae, x, v = _ae(), _x(100), _x(30, seed=1)
    history = npvae.train(ae, x, x_val=v, epochs=2, batch_size=25, out_dir=tmp_path / "R",
                          verbose=False)
    assert len(history) == 2 and (tmp_path / "R" / "checkpoint.npz").exists()
    # The validation loss is the autoencoder's own loss (its reconstruction NLL), KL 0.
    assert history[-1]["val_loss"] == pytest.approx(evaluate.reconstruction_error(ae, v))
    assert history[-1]["val_kl"] == 0.0
    loss, _, _ = ae.loss_and_grads(v.astype(np.float32))
    assert history[-1]["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert evaluate.evaluate(ae, v) == {"n": 30, "recon": pytest.approx(loss, rel=1e-5)}


def test_reconstruction_error_of_a_vae_is_at_the_posterior_mean():
    model, x = npvae.VAE(12, (8,), 2, dtype=np.float64, seed=0), _x(20)
    expected = model.nll(x, np.zeros((20, 2))).mean()
    assert evaluate.reconstruction_error(model, x, batch_size=7) == pytest.approx(expected)


@pytest.fixture
def ae_run(tmp_path):
    """An Autoencoder trained from Python on fake MNIST, into a run folder npvae reads."""
    data_dir = fake_mnist(tmp_path / "data", n_train=10, n_test=40)
    x = np.random.default_rng(0).random((60, 784)).astype(np.float32)
    npvae.train(npvae.Autoencoder(784, (16,), 2, seed=0), x, epochs=1, batch_size=30,
                out_dir=tmp_path / "R", verbose=False, extra={"dataset": "mnist",
                                                              "data_dir": str(data_dir)})
    return tmp_path / "R"


def test_npvae_evaluate_reports_an_autoencoders_reconstruction_error(ae_run, capsys):
    assert cli.main(["evaluate", str(ae_run), "--k", "3", "--n", "20"]) == 0
    out = capsys.readouterr().out
    assert "Autoencoder" in out and "recon error" in out and "has no ELBO" in out


def test_npvae_plot_draws_what_applies_to_an_autoencoder(ae_run, tmp_path, capsys):
    assert cli.main(["plot", str(ae_run), "--out", str(tmp_path / "F")]) == 0
    out = capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "F").iterdir())
    assert written == ["interpolation.png", "latent_scatter.png", "loss_curves.png",
                       "reconstructions.png"]
    for name in ("samples.png", "manifold.png", "kl_per_dim.png"):
        assert f"skipped {name}: an Autoencoder has no" in out


def test_an_autoencoders_interpolation_goes_between_its_codes():
    ae, x = _ae(D=16), _x(6, D=16).astype(np.float32)  # 4 × 4 images
    fig = plots.interpolations(ae, x[:3], x[3:], steps=3)  # was: 3 codes unpacked as (mu, logvar)
    assert len(fig.axes) >= 3


# --------------------------------------------------------------------------- the figures


def test_hvae_kl_figure_and_labels_name_both_layers():
    assert plots.run_label("mnist", 3, (20, 10)) == "MNIST · 3 epochs · Z₁ = 20, Z₂ = 10"
    fig = plots.kl_bars(np.array([1.0, 2, 3, 0.5, 0.25]), "ctx", layers=(3, 2))
    title = fig.axes[0].get_title()
    assert "z₁ 6.0" in title and "z₂ 0.8" in title
    fig = plots.prior_samples(_hvae(D=16), 4, ncols=2, rng=np.random.default_rng(0))
    assert "z₁ ~ p(z₁ | z₂)" in fig.axes[0].get_xlabel()


# --------------------------------------------------------------------------- issue 25, Also


def test_em_ppca_checks_its_arguments():
    X = np.random.default_rng(6).standard_normal((10, 4))
    for bad in (0, 4, 1.5, True):
        with pytest.raises(ValueError, match="n_components must be an integer in"):
            ppca.em_ppca(X, bad)
    with pytest.raises(ValueError, match="n_iter must be an integer ≥ 0"):
        ppca.em_ppca(X, 2, n_iter=-1)
    with pytest.raises(ValueError, match="needs at least 2"):  # was: "math domain error"
        ppca.em_ppca(X[:1], 2)
    assert len(ppca.em_ppca(X, 2, n_iter=0)[3]) == 1


def test_inference_refuses_k_0_by_name():
    model = npvae.VAE(6, (4,), 2, seed=0)
    x = np.random.default_rng(0).random((3, 6))
    mu, logvar = model.encode(x)
    for call in (lambda: inference.elbo_of_q(model, x, mu, logvar, k=0),
                 lambda: inference.optimize_q(model, x, steps=1, k=0),
                 lambda: inference.amortization_gap(model, x, steps=1, k_elbo=0)):
        with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
            call()
    with pytest.raises(ValueError, match="Bernoulli likelihood needs targets in"):
        inference.elbo_of_q(model, x * 3, mu, logvar)


def test_train_refuses_an_optimizer_over_another_models_params():
    model, other = npvae.VAE(6, (4,), 2, seed=0), npvae.VAE(6, (4,), 2, seed=1)
    x = np.random.default_rng(0).random((20, 6))
    before = {k: p.copy() for k, p in model.params.items()}
    for opt in (npvae.Adam(other.params), npvae.SGD({k: p.copy() for k, p in
                                                     model.params.items()}, 0.1)):
        with pytest.raises(ValueError, match="optimizer must update this model's own"):
            npvae.train(model, x, epochs=1, optimizer=opt, verbose=False)
    assert all(np.array_equal(before[k], p) for k, p in model.params.items())
    npvae.train(model, x, epochs=1, optimizer=npvae.SGD(model.params, 0.1), verbose=False)
    assert not all(np.array_equal(before[k], p) for k, p in model.params.items())


def test_a_tiny_sigma_is_blamed_for_the_divergence_not_the_learning_rate():
    model = npvae.VAE(16, (8,), 2, likelihood="gaussian", sigma=1e-10, seed=0)
    x = np.random.default_rng(0).random((50, 16))
    with pytest.raises(npvae.run.training.NonFiniteLossError) as err:
        npvae.train(model, x, epochs=1, verbose=False)
    message = str(err.value)
    assert "σ too small (σ = 1e-10" in message and "--sigma" in message
    assert "learning rate" not in message


def test_a_huge_label_with_conditional_is_refused_naming_the_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    y[0] = 10**9
    np.savez(tmp_path / "d.npz", x=rng.random((60, 16)).astype(np.float32), y=y)
    code = cli.main(["train", "--data", str(tmp_path / "d.npz"), "--conditional", "--epochs",
                     "1", "--hidden", "16", "--latent-dim", "2", "--quiet", "--out",
                     str(tmp_path / "R")])
    err = capsys.readouterr().err
    assert code == 2 and "run up to 1,000,000,000" in err and "16-16-2 VAE" not in err
    assert "renumber them" in err


def test_the_memory_message_names_the_model_kind_and_its_classes():
    with pytest.raises(npvae.TooLargeError, match=r"16-16-2 CVAE, n_classes = 1,000,000,001"):
        npvae.CVAE(16, 10**9 + 1, (16,), 2)


def test_a_posterior_that_is_not_diagonal_is_refused_where_it_matters():
    """A subclass of the VAE with another encoder (an extra head) is not a plain VAE."""
    class ExtraHead(npvae.VAE):
        encoder_heads = ("mu", "logvar", "offdiag")

    model = ExtraHead(6, (4,), 2, seed=0)
    x = np.random.default_rng(0).random((5, 6))
    with pytest.raises(TypeError, match="supports the plain VAE.*not a ExtraHead"):
        inference.optimize_q(model, x, steps=1)
    with pytest.raises(TypeError, match="needs a diagonal Gaussian q"):
        evaluate.kl_per_dimension(model, x)


def test_npvae_plot_and_train_banner_of_an_hvae_name_both_layers(tmp_path, capsys, monkeypatch):
    data_dir = fake_mnist(tmp_path / "data", n_train=120, n_test=30)
    assert cli.main(["train", "--data-dir", str(data_dir), "--val", "20", "--hidden", "16",
                     "--latent-dims", "3", "2", "--batch-size", "25", "--epochs", "1",
                     "--eval-k", "0", "--out", str(tmp_path / "R")]) == 0
    assert "model 784-16-3-2," in capsys.readouterr().out
    drawn = {}
    real = plots.kl_bars

    def spy(kl, context="", layers=None):
        drawn.update(kl=np.asarray(kl), context=context, layers=layers)
        return real(kl, context, layers)

    monkeypatch.setattr(plots, "kl_bars", spy)
    assert cli.main(["plot", str(tmp_path / "R"), "--out", str(tmp_path / "F")]) == 0
    assert drawn["layers"] == (3, 2) and drawn["kl"].shape == (5,)
    assert "Z₁ = 3, Z₂ = 2" in drawn["context"]


def test_evaluate_of_a_full_covariance_posterior_leaves_out_only_the_kl_per_dimension():
    model = npvae.FullCovarianceVAE(12, (8,), 3, seed=0)
    result = evaluate.evaluate(model, _x(20), k=5, rng=np.random.default_rng(0))
    assert "kl_per_dim" not in result and np.isfinite(result["log_likelihood"])
    assert result["kl"] > 0 and 0 <= result["active_units"] <= 3


def test_npvae_plot_skips_the_kl_per_dimension_of_a_full_covariance_posterior(tmp_path,
                                                                             capsys):
    data_dir = fake_mnist(tmp_path / "data", n_train=10, n_test=30)
    x = np.random.default_rng(0).random((60, 784)).astype(np.float32)
    npvae.train(npvae.FullCovarianceVAE(784, (16,), 2, seed=0), x, epochs=1, batch_size=30,
                out_dir=tmp_path / "R", verbose=False,
                extra={"dataset": "mnist", "data_dir": str(data_dir)})
    assert cli.main(["plot", str(tmp_path / "R"), "--out", str(tmp_path / "F")]) == 0
    out = capsys.readouterr().out
    assert "skipped kl_per_dim.png: a FullCovarianceVAE's q(z|x) is not diagonal" in out
    assert (tmp_path / "F" / "reconstructions.png").is_file()
