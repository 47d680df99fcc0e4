"""The demos of issue 4, end to end on tiny settings, and the linear VAE = PPCA claim.

Each demo runs in-process through its ``main(argv)``, for one epoch of a tiny model on a few
hundred fake images written as real IDX files into a temporary --data-dir, so the loader's
search is exercised too. The user's cache, $NPVAE_DATA_DIR, the system data folders and the
download mirrors are all pointed away, so nothing outside tmp_path is read or fetched.
"""

from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.run import cli
from npvae.run import data
from npvae.run import plots
from test_data import write_idx  # tests/ is on sys.path
from test_demos_beyond import _assert_pngs as assert_pngs
from test_demos_beyond import _demo as demo

DEMOS = Path(__file__).resolve().parent.parent / "demos"
TINY = ["--dataset", "mnist", "--epochs", "1", "--hidden", "16", "--batch-size", "50"]


def fake_images(n, seed):
    """(n, 28, 28) uint8 images and labels: class c is a bright bar in row band c, on noise."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 80, (n, 28, 28))
    for c in range(10):
        images[labels == c, 2 * c + 3:2 * c + 6, 4:24] = 230
    return images, labels


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A --data-dir holding a fake MNIST: 300 train and 100 test images."""
    folder = tmp_path_factory.mktemp("data") / "mnist"
    folder.mkdir()
    for prefix, n, seed in [("train", 300, 0), ("t10k", 100, 1)]:
        images, labels = fake_images(n, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder.parent


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real data folders, no network; the demos' folder importable (for _common)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPVAE_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", ())
    monkeypatch.setattr(data, "MIRRORS", {})
    monkeypatch.syspath_prepend(str(DEMOS))


def test_mnist_demo_and_plots_from_its_checkpoint(data_dir, tmp_path, capsys):
    out = tmp_path / "mnist"
    result = demo("mnist").main([*TINY, "--latent", "4", "--data-dir", str(data_dir),
                                 "--k", "5", "--n-ll", "20", "--out", str(out)])
    assert len(result["history"]) == 1 and "val_recon" in result["history"][0]
    assert np.isfinite(result["test"]["elbo"]) and result["test"]["elbo"] < 0
    assert result["log_likelihood"] < 0
    printed = capsys.readouterr().out
    assert "test ELBO" in printed and "IWAE, k = 5" in printed
    figures = ["reconstructions.png", "samples.png", "loss_curves.png", "kl_per_dim.png"]
    assert_pngs(out, figures)

    # The checkpoint (it records the dataset and --data-dir) redraws the figures, without
    # retraining.
    model = npvae.load(out / "checkpoint.npz")
    assert model.latent_dim == 4 and model.config.hidden_dims == (16,)
    written = plots.plot_checkpoint(out, tmp_path / "replot")
    assert {p.name for p in written} == {*figures, "interpolation.png", "traversal.png"}  # Z > 2
    assert_pngs(tmp_path / "replot", [p.name for p in written])


def test_mnist_demo_without_the_train_files_names_the_fix(tmp_path, capsys):
    only_test = tmp_path / "only-test"
    only_test.mkdir()
    images, labels = fake_images(20, 0)
    write_idx(only_test / "t10k-images-idx3-ubyte.gz", images)
    write_idx(only_test / "t10k-labels-idx1-ubyte.gz", labels)
    argv = [*TINY, "--data-dir", str(only_test), "--out", str(tmp_path / "out"),
            "--no-fallback"]
    module = demo("mnist")
    with pytest.raises(npvae.DataError, match="(?s)train-images-idx3-ubyte.gz.*--data-dir.*"
                                              "--dataset fashion-mnist"):
        module.main(argv)
    with pytest.raises(SystemExit) as exit_info:  # as a script: one line, exit code 2
        module._common.run(module.main, argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
    # Where only the test split is at hand, it can stand in for both.
    result = module.main([*argv, "--test-split-only", "--n-ll", "4", "--k", "2"])
    assert np.isfinite(result["test"]["elbo"])


def test_main_job_offline_runs_on_the_bundled_split(tmp_path, monkeypatch, capsys):
    """The README's first command with no network and no data anywhere: it trains on the MNIST
    test split bundled with npvae, says so once, and writes its figures to figures/mnist/."""
    monkeypatch.chdir(tmp_path)
    result = demo("mnist").main(["--epochs", "1", "--hidden", "32", "--latent", "4",
                                 "--n-ll", "20", "--k", "2"])
    captured = capsys.readouterr()
    assert captured.err.count("the MNIST test split that comes with npvae") == 1
    assert "data: mnist test split bundled with npvae: train 8,000 / test 2,000" in captured.out
    assert np.isfinite(result["test"]["elbo"]) and len(result["history"]) == 1
    assert_pngs(tmp_path / "figures" / "mnist",
                ["reconstructions.png", "samples.png", "loss_curves.png", "kl_per_dim.png"])


def test_demo_output_folders_are_named_for_the_data():
    assert demo("mnist").build_parser().parse_args([]).out == "figures/mnist"
    assert demo("mnist").build_parser().parse_args(
        ["--dataset", "fashion-mnist"]).out == "figures/fashion-mnist"
    assert demo("latent2d").build_parser().parse_args(
        ["--dataset", "fashion-mnist"]).out == "figures/latent2d/fashion-mnist"
    assert demo("mnist").build_parser().parse_args(["--out", "x"]).out == "x"


def test_latent2d_demo(data_dir, tmp_path):
    result = demo("latent2d").main([*TINY, "--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert np.isfinite(result["test"]["elbo"])
    assert_pngs(tmp_path, ["latent_scatter.png", "manifold.png"])
    # `npvae plot RUN_FOLDER` adds the 2-D figures to the others.
    assert cli.main(["plot", str(tmp_path), "--out", str(tmp_path / "replot")]) == 0
    assert_pngs(tmp_path / "replot", ["samples.png", "loss_curves.png", "reconstructions.png",
                                      "kl_per_dim.png", "interpolation.png", "manifold.png",
                                      "latent_scatter.png"])


def test_interpolate_demo(data_dir, tmp_path):
    demo("interpolate").main([*TINY, "--latent", "3", "--pairs", "2", "--steps", "5",
                              "--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert_pngs(tmp_path, ["interpolation.png"])


def test_latent_spaces_demo(data_dir, tmp_path):
    result = demo("latent_spaces").main([*TINY, "--data-dir", str(data_dir),
                                         "--out", str(tmp_path)])
    assert [name for name, _, _ in result["panels"]] == [
        "reconstruction only (autoencoder)", "KL only", "full ELBO (VAE)"]
    assert all(mu.shape == (100, 2) for _, mu, _ in result["panels"])
    assert_pngs(tmp_path, ["latent_spaces.png"])


def test_the_autoencoder_and_kl_only_models_train_on_the_right_loss():
    module = demo("latent_spaces")
    rng = np.random.default_rng(0)
    x = rng.random((6, 5))  # (B, D)

    # The autoencoder is the VAE at eps = 0 and beta = 0: z = mu, no KL, no gradient to logvar.
    ae = module.Autoencoder(5, hidden_dims=(4,), latent_dim=2, dtype=np.float64, seed=1)
    vae = npvae.VAE(5, hidden_dims=(4,), latent_dim=2, dtype=np.float64, seed=1)
    loss, grads, _ = ae.loss_and_grads(x, rng=rng)
    ref_loss, ref_grads, _ = vae.loss_and_grads(x, eps=np.zeros((6, 2)), beta=0.0)
    assert loss == ref_loss
    for name in grads:
        np.testing.assert_array_equal(grads[name], ref_grads[name])
    assert not grads["logvar.W"].any() and not grads["logvar.b"].any()

    # KL only, on a linear encoder (h = x): mu = x W + b, and the KL's gradients written out by
    # hand: ∂KL/∂mu = mu / B, ∂KL/∂logvar = (e^logvar - 1) / (2B); the decoder gets none.
    kl_only = module.KLOnly(5, hidden_dims=(), latent_dim=2, dtype=np.float64, seed=2)
    loss, grads, stats = kl_only.loss_and_grads(x, rng=rng)
    mu, logvar = kl_only.encode(x)
    np.testing.assert_allclose(loss, np.mean(0.5 * (mu**2 + np.exp(logvar) - logvar - 1).sum(1)))
    assert stats["loss"] == loss
    np.testing.assert_allclose(grads["mu.W"], x.T @ mu / 6, atol=1e-12)
    np.testing.assert_allclose(grads["logvar.b"], ((np.exp(logvar) - 1) / 12).sum(0), atol=1e-12)
    assert not grads["out.W"].any() and not grads["out.b"].any()


def test_beta_tradeoff_demo(data_dir, tmp_path):
    result = demo("beta_tradeoff").main([*TINY, "--latent", "3", "--betas", "0.5", "4",
                                         "--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert result["betas"] == [0.5, 4.0]
    assert np.isfinite(result["recon"]).all() and (np.array(result["kl"]) >= 0).all()
    assert_pngs(tmp_path, ["beta_tradeoff.png"])


def test_linear_vae_reaches_the_ppca_optimum(tmp_path):
    """On synthetic rank-3 data with the decoder's σ at the PPCA maximum-likelihood σ, the
    trained linear VAE's ELBO is within 1% of the PPCA maximum log-likelihood, and its decoder
    spans the top principal subspace to within 5 degrees (Lucas et al. 2019)."""
    result = demo("linear_vae_pca").main(["--out", str(tmp_path)])
    train = result["train"]
    assert train["elbo"] < train["ppca"]  # a lower bound on a likelihood that PPCA maximises
    assert (train["ppca"] - train["elbo"]) / abs(train["ppca"]) < 0.01
    assert (train["ppca"] - train["log_p"]) / abs(train["ppca"]) < 0.01
    assert result["angles"].max() < 5
    assert result["angles_init"].max() > 30  # it was not there by chance at the start
    assert_pngs(tmp_path, ["linear_vae_pca.png"])
