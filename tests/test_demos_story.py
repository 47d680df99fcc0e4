"""The demos of generation and regularity (issue 14), end to end on tiny fake data: each runs
through its ``main(argv)``, prints its numbers, and writes non-empty PNGs."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_demos_beyond import _assert_pngs, _demo, fake_dataset  # noqa: E402,F401,F811

TINY = ["--dataset", "fashion-mnist", "--epochs", "1", "--hidden", "16", "--batch-size", "50"]


def test_regularity_demo(fake_dataset, tmp_path, capsys):
    result = _demo("regularity").main([*TINY, "--epochs", "3", "--seeds", "0", "1",
                                       "--n-prior", "200", "--collapse-steps", "30",
                                       "--out", str(tmp_path)])
    for name in ("autoencoder", "VAE"):
        assert len(result["per_seed"][name]) == 2
        for m in result["per_seed"][name]:
            assert all(np.isfinite(m[k]) and m[k] > 0 for k in ("prior", "grid", "recon"))
            assert m["unevenness"] >= 1 and 1 <= m["classes"] <= 10
            assert 0 <= m["outside_3"] <= 1 and 0 <= m["near"] <= 1
    # The separating numbers point the right way even on 3 epochs of fake data: the
    # autoencoder's codes leave the prior's ball, the VAE's stay near it.
    ae, vae = result["summary"]["autoencoder"], result["summary"]["VAE"]
    assert ae["outside_3"][0] > 0.5 > vae["outside_3"][0]
    assert ae["kl_codes"][0] > 3 * vae["kl_codes"][0]
    assert ae["max_code"][0] > vae["max_code"][0]
    sigma = result["sigma"]["β = 0"]
    assert len(sigma) >= 3 and sigma[-1] < sigma[0]  # without the KL, σ shrinks
    out = capsys.readouterr().out
    assert "mean ± sd over 2 seeds" in out and "unevenness" in out
    _assert_pngs(tmp_path, ["regularity.png", "sigma_collapse.png"])


def test_latent_spaces_reconstruction_pays_for_the_kl(fake_dataset, tmp_path, capsys):
    result = _demo("latent_spaces").main([*TINY, "--epochs", "10", "--seeds", "0",
                                          "--out", str(tmp_path)])
    summary = result["summary"]
    ae, kl_only, vae = (summary[name] for name in (
        "reconstruction only (autoencoder)", "KL only", "full ELBO (VAE)"))
    for split in ("train", "test"):  # reconstruction: autoencoder < VAE < KL only
        assert ae[split][0] < vae[split][0] < kl_only[split][0]
    assert ae["KL"] is None and kl_only["KL"][0] < 0.05 < vae["KL"][0]  # KL only: q = prior
    assert "the KL's price in reconstruction (test)" in capsys.readouterr().out
    _assert_pngs(tmp_path, ["latent_spaces.png"])


def test_decoder_variance_demo(fake_dataset, tmp_path, capsys):
    result = _demo("decoder_variance").main([*TINY, "--epochs", "3", "--latent", "3",
                                             "--seeds", "0", "1", "--sigmas", "0.1", "3",
                                             "--out", str(tmp_path)])
    small, large = result["results"]
    assert small["kl"] > large["kl"]  # a small c makes the KL cheap: the code carries more
    assert large["squared_error"] > small["squared_error"]  # a large c blurs
    assert len(result["per_seed"][0.1]) == 2 and small["kl_sd"] >= 0
    assert result["c_learned"] > 0
    assert "mean ± sd over 2 seeds" in capsys.readouterr().out
    _assert_pngs(tmp_path, ["decoder_variance.png", "decoder_variance_images.png"])


def test_the_learned_variance_is_read_from_the_decoders_draws():
    module = _demo("decoder_variance")
    import npvae
    model = npvae.VAE(16, hidden_dims=(8,), latent_dim=2, likelihood="gaussian", sigma=0.3,
                      seed=0, dtype=np.float64)
    x = np.random.default_rng(0).random((500, 16))
    # A fixed-σ decoder's draws have variance σ² exactly, up to the Monte Carlo error.
    assert module.learned_variance(model, x, seed=0) == pytest.approx(0.09, rel=0.03)


def test_linear_autoencoder_demo(tmp_path):
    result = _demo("linear_autoencoder").main(["--epochs", "400", "--out", str(tmp_path)])
    ae, vae = result["linear autoencoder"], result["linear VAE"]
    assert ae["subspace"].max() < 2 and vae["subspace"].max() < 2  # both span PCA's subspace
    assert vae["axes"].max() < 5 and ae["axes"].max() > 10  # only the VAE finds the axes
    _assert_pngs(tmp_path, ["linear_autoencoder.png"])


def test_overfit_autoencoder_demo(fake_dataset, tmp_path):
    result = _demo("overfit_autoencoder").main([*TINY, "--n-train", "40", "--n-test", "20",
                                                "--out", str(tmp_path)])
    assert all(np.isfinite(v) for v in result.values())
    _assert_pngs(tmp_path, ["overfit_autoencoder.png"])


def test_inference_demo(fake_dataset, tmp_path, capsys):
    result = _demo("inference").main([*TINY, "--steps", "20", "--n-gap", "20",
                                      "--out", str(tmp_path)])
    curves = result["identity"]
    np.testing.assert_allclose(curves["log_px"] - curves["elbo"] - curves["kl"], 0, atol=1e-9)
    assert np.ptp(curves["log_px"]) < 1e-9  # θ frozen: log p(x) does not move
    assert curves["elbo"][-1] > curves["elbo"][0] and curves["kl"][-1] < curves["kl"][0]
    em = result["em"]["EM (exact E-step)"]
    assert np.all(np.diff(em) >= -1e-10) and abs(em[-1] - result["best"]) < 1e-3
    gap = result["gap"]
    assert gap["elbo_optimal"] > gap["elbo_encoder"]  # the per-image q beats the encoder's
    assert "amortisation gap" in capsys.readouterr().out
    _assert_pngs(tmp_path, ["elbo_identity.png", "em.png", "posteriors.png"])


def test_classifier_demo(fake_dataset, tmp_path, capsys):
    result = _demo("classifier").main([*TINY, "--epochs", "20", "--k", "5", "--n-classify", "50",
                                       "--out", str(tmp_path)])
    assert result["confusion"].sum() == 50 and 0 <= result["accuracy"] <= 1
    assert result["accuracy"] > 0.3  # the fake classes are bars in different rows: easy
    assert "accuracy of the CVAE as a Bayes classifier" in capsys.readouterr().out
    _assert_pngs(tmp_path, ["classifier_confusion.png"])


def test_estimators_demo(fake_dataset, tmp_path, capsys):
    results = _demo("estimators").main([*TINY, "--epochs", "20", "--ks", "1", "50",
                                        "--repeats", "2", "--n-images", "10",
                                        "--out", str(tmp_path)])
    prior, posterior = results["z ~ p(z)"], results["z ~ q(z|x), IWAE"]
    assert prior.shape == posterior.shape == (2, 2)
    assert posterior.mean() > prior.mean()  # sampling the posterior finds the mass
    # The gradient side: a line per estimator and k, with its noise and bias, finite.
    printed = re.findall(r"^(.+?) +k = +(\d+): gradient noise +(\S+), bias +(\S+) "
                         r"\(floor (\S+)\)$", capsys.readouterr().out, flags=re.M)
    assert [(name, int(k)) for name, k, *_ in printed] == [
        ("z ~ p(z)", 1), ("z ~ p(z)", 50), ("z ~ q(z|x), IWAE", 1), ("z ~ q(z|x), IWAE", 50)]
    assert all(np.isfinite(float(v)) and float(v) >= 0 for *_, n, b, f in printed
               for v in (n, b, f))
    for name in ("z ~ p(z)", "z ~ q(z|x), IWAE"):
        assert results["gradients"][name]["noise"].shape == (2,)
    _assert_pngs(tmp_path, ["estimators.png"])


def test_hierarchy_demo(fake_dataset, tmp_path, capsys):
    results = _demo("hierarchy").main([*TINY, "--epochs", "2", "--seconds", "100", "--latent",
                                       "4", "--top", "2", "--k", "5", "--n-ll", "20",
                                       "--out", str(tmp_path)])
    runs = [r for name, r in results.items() if name != "layers"]
    assert len(runs) == 2 and all(r["epochs"] == 2 and np.isfinite(r["log_px"]) for r in runs)
    assert len(results["layers"]["active"]) == 2
    assert "HVAE layers: KL" in capsys.readouterr().out
    _assert_pngs(tmp_path, ["hierarchy.png"])
