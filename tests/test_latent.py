"""Issue 24 item 10: npvae.interpolate(model, x_a, x_b, steps) and the latent traversal (one
dimension at a time), in Python and as npvae plot's traversal.png for Z > 2."""

import sys
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.run import cli
from npvae.study import latent

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import fake_mnist  # noqa: E402


def _model(cls=npvae.VAE, **kw):
    return cls(12, (8,), 3, dtype=np.float64, seed=0, **kw)


X = np.random.default_rng(0).random((6, 12))


def test_interpolate_decodes_the_straight_path_between_the_codes():
    model = _model()
    path = npvae.interpolate(model, X[0], X[1], steps=5)
    assert path.shape == (5, 12)
    mu_a, mu_b = model.encode(X[:1])[0][0], model.encode(X[1:2])[0][0]
    np.testing.assert_allclose(path[0], model.decode(mu_a[None])[0])
    np.testing.assert_allclose(path[-1], model.decode(mu_b[None])[0])
    np.testing.assert_allclose(path[2], model.decode(((mu_a + mu_b) / 2)[None])[0])
    pairs = npvae.interpolate(model, X[:3], X[3:], steps=4)
    assert pairs.shape == (3, 4, 12)
    np.testing.assert_allclose(pairs[1, 0], model.decode(model.encode(X[1:2])[0])[0])


def test_interpolate_uses_an_autoencoders_code():
    ae = npvae.Autoencoder(12, (8,), 3, dtype=np.float64, seed=0)
    path = npvae.interpolate(ae, X[0], X[1], steps=3)
    np.testing.assert_allclose(path[0], ae.reconstruct(X[:1])[0])


def test_interpolate_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="steps must be at least 2"):
        npvae.interpolate(_model(), X[0], X[1], steps=1)
    with pytest.raises(ValueError, match="same shape"):
        npvae.interpolate(_model(), X[:2], X[:3])
    with pytest.raises(TypeError, match="decodes with a label"):
        npvae.interpolate(npvae.CVAE(12, 3, (8,), 2), X[0], X[1])


def test_traversal_changes_one_dimension_per_row():
    model = _model()
    values = np.array([-1.0, 0.0, 2.0])
    images = latent.traversal(model, X[0], values)
    assert images.shape == (3, 3, 12)
    z0 = model.encode(X[:1])[0][0]
    for j in range(3):
        for v, value in enumerate(values):
            z = z0.copy()
            z[j] = value
            np.testing.assert_allclose(images[j, v], model.decode(z[None])[0])


def test_npvae_plot_draws_a_traversal_for_more_than_two_latents(tmp_path, capsys):
    data_dir = fake_mnist(tmp_path / "data", n_train=150, n_test=40)
    assert cli.main(["train", "--data-dir", str(data_dir), "--val", "20", "--hidden", "16",
                     "--latent-dim", "4", "--batch-size", "25", "--epochs", "1",
                     "--eval-k", "0", "--quiet", "--out", str(tmp_path / "R")]) == 0
    assert cli.main(["plot", str(tmp_path / "R"), "--out", str(tmp_path / "F")]) == 0
    assert (tmp_path / "F" / "traversal.png").is_file()
    assert "traversal.png" in capsys.readouterr().out
