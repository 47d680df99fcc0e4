"""The demos of the CVAE, IWAE, beta/free bits and the estimator, end to end on tiny fake data.

Each runs in-process through its ``main(argv)``, for 1 epoch on a few hundred fake 28 × 28
images (npvae.run.data.load_dataset is replaced), and must write non-empty PNGs.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from npvae.run import data

DEMOS = Path(__file__).resolve().parent.parent / "demos"


@pytest.fixture
def fake_dataset(monkeypatch):
    """load_dataset -> (x (N, 784) float32 in [0, 1], labels (N,) uint8): class c is a bright
    bar in row band c, plus noise; 300 train and 100 test images."""
    def load_dataset(name, split, data_dir=None, download=True, dtype=np.float32):
        n = 300 if split == "train" else 100
        rng = np.random.default_rng(0 if split == "train" else 1)
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.uniform(0, 0.3, (n, 28, 28))
        for c in range(10):
            images[labels == c, 2 * c + 3:2 * c + 6, 4:24] = 0.9
        return images.reshape(n, -1).astype(dtype), labels

    monkeypatch.setattr(data, "load_dataset", load_dataset)
    monkeypatch.syspath_prepend(str(DEMOS))  # the demos import their _common module


def _demo(name):
    spec = importlib.util.spec_from_file_location(f"demo_{name}", DEMOS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_pngs(folder, names):
    for name in names:
        path = Path(folder) / name
        assert path.stat().st_size > 1000, path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


TINY = ["--dataset", "fashion-mnist", "--epochs", "1", "--hidden", "16", "--batch-size", "50"]


def test_cvae_demo(fake_dataset, tmp_path):
    result = _demo("cvae").main([*TINY, "--latent", "3", "--out", str(tmp_path)])
    assert np.isfinite(result["test_loss"])
    _assert_pngs(tmp_path, ["cvae_classes.png", "cvae_style_transfer.png"])


def test_iwae_vs_vae_demo(fake_dataset, tmp_path):
    results = _demo("iwae_vs_vae").main([*TINY, "--latent", "4", "--k", "3", "--k-eval", "20",
                                         "--n-ll", "30", "--out", str(tmp_path)])
    assert [r["name"] for r in results] == ["VAE", "IWAE (K=3)"]
    for r in results:
        assert np.isfinite([r["log_p"], r["elbo"]]).all() and r["variance"].shape == (4,)
        assert 0 <= r["active"] <= 4
    _assert_pngs(tmp_path, ["iwae_vs_vae.png"])


def test_active_units_beta_demo(fake_dataset, tmp_path):
    series = _demo("active_units_beta").main([*TINY, "--latent", "4", "--betas", "0.5", "4",
                                              "--free-bits", "0.3", "--out", str(tmp_path)])
    assert list(series) == ["plain KL", "free bits, λ = 0.3 nats"]
    for results in series.values():
        assert [r["beta"] for r in results] == [0.5, 4.0]
        assert all(0 <= r["active"] <= 4 and r["kl"] >= 0 for r in results)
    _assert_pngs(tmp_path, ["active_units_beta.png"])


def test_vae_vs_pca_demo(fake_dataset, tmp_path):
    errors = _demo("vae_vs_pca").main([*TINY, "--out", str(tmp_path)])
    assert set(errors) == {"PCA", "VAE"} and all(e > 0 for e in errors.values())
    _assert_pngs(tmp_path, ["vae_vs_pca_embedding.png", "vae_vs_pca_reconstructions.png"])
