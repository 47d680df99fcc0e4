"""Tests for npvae.run.plots: the arrays behind each figure, the labels on it, and the files."""

import io

import numpy as np
import pytest
from scipy.stats import norm

import npvae
from npvae.run import plots

CONTEXT = plots.run_label("fashion-mnist", 3, 2)


@pytest.fixture(scope="module")
def model():
    return npvae.VAE(784, hidden_dims=(8,), latent_dim=2, seed=0)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((12, 784), dtype=np.float32)


def titles(fig):
    """Every title and suptitle text on the figure."""
    texts = [ax.get_title() for ax in fig.axes]
    if fig._suptitle is not None:
        texts.append(fig._suptitle.get_text())
    return " | ".join(texts)


def test_run_label():
    assert plots.run_label("fashion-mnist", 20, 20) == "Fashion-MNIST · 20 epochs · Z = 20"
    assert plots.run_label("mnist", 1, 2) == "MNIST · 1 epoch · Z = 2"
    assert plots.run_label(None, None, 5) == "Z = 5"


def test_tile_places_images_row_by_row():
    images = np.repeat(np.arange(5.0)[:, None], 4, axis=1)  # five 2x2 images of value i
    canvas = plots.tile(images, ncols=3, pad=1, pad_value=-1.0)
    assert canvas.shape == (2 * 3 - 1, 3 * 3 - 1)
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(canvas[3 * r:3 * r + 2, 3 * c:3 * c + 2], i)
    assert canvas[2, 0] == -1 and canvas[0, 2] == -1  # the padding between cells
    np.testing.assert_array_equal(canvas[3:5, 6:8], -1)  # the empty sixth cell
    with pytest.raises(ValueError, match="not square"):
        plots.tile(np.zeros((2, 5)), ncols=2)


def test_lerp_and_slerp():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4, 3))  # (P, Z) each
    t = np.linspace(0, 1, 7)
    for fn in (plots.lerp, plots.slerp):
        path = fn(a, b, t)  # (P, T, Z)
        assert path.shape == (4, 7, 3)
        np.testing.assert_allclose(path[:, 0], a, atol=1e-12)
        np.testing.assert_allclose(path[:, -1], b, atol=1e-12)
    np.testing.assert_allclose(plots.lerp(a, b, t)[:, 3], (a + b) / 2)
    # Between vectors of equal norm the spherical path keeps that norm, at constant angular
    # speed; the linear path dips inside the sphere.
    norm_a = np.linalg.norm(a, axis=1, keepdims=True)  # (P, 1)
    b_unit = b / np.linalg.norm(b, axis=1, keepdims=True) * norm_a
    path = plots.slerp(a, b_unit, t)
    np.testing.assert_allclose(np.linalg.norm(path, axis=2),
                               np.repeat(np.linalg.norm(a, axis=1)[:, None], 7, axis=1))
    unit = path / np.linalg.norm(path, axis=2, keepdims=True)
    steps = np.arccos(np.clip((unit[:, 1:] * unit[:, :-1]).sum(axis=2), -1, 1))  # (P, T-1)
    np.testing.assert_allclose(steps, steps[:, :1] * np.ones_like(steps), atol=1e-9)
    assert (np.linalg.norm(plots.lerp(a, b_unit, t)[:, 3], axis=1)
            < np.linalg.norm(a, axis=1)).all()
    # Parallel endpoints: no division by sin 0, the linear path.
    np.testing.assert_allclose(plots.slerp(a, 2 * a, t), plots.lerp(a, 2 * a, t))


class RecordingDecoder:
    """Stands in for a 2-D VAE: decode(z) records z and returns images of value z₁ + 10 z₂."""

    latent_dim = 2
    dtype = np.dtype(np.float64)

    def decode(self, z):
        self.z = z
        return np.repeat((z[:, :1] + 10 * z[:, 1:]), 784, axis=1)


def test_manifold_grid_is_spaced_by_the_inverse_normal_cdf():
    decoder = RecordingDecoder()
    fig = plots.manifold(decoder, n=5, context=CONTEXT)
    values = norm.ppf(np.linspace(0.05, 0.95, 5))
    z = decoder.z.reshape(5, 5, 2)  # (rows, cols, 2), row by row from the top
    np.testing.assert_allclose(z[0, :, 0], values)  # z₁ grows to the right
    np.testing.assert_allclose(z[:, 0, 1], values[::-1])  # z₂ grows upwards
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("z₁") and ax.get_ylabel() == "z₂"
    assert CONTEXT in titles(fig)
    with pytest.raises(ValueError, match="latent_dim = 2"):
        plots.manifold(npvae.VAE(784, (8,), 3, seed=0))


def test_reconstructions_show_inputs_above_reconstructions(model, x):
    fig = plots.reconstructions(model, x[:10], ncols=5, context=CONTEXT)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["input", "reconstruction"] * 2
    shown = fig.axes[1].images[0].get_array()
    np.testing.assert_allclose(shown, plots.tile(model.reconstruct(x[:5]), 5), rtol=1e-6)
    assert fig.axes[0].images[0].get_interpolation() == "nearest"
    assert fig.axes[0].images[0].get_cmap().name == "gray"
    assert CONTEXT in titles(fig)


def test_loss_curves_plot_the_elbo_recon_and_kl(tmp_path):
    history = [{"epoch": e, "loss": 0.0, "recon": 100.0 - e, "kl": 5.0 + e,
                "val_recon": 101.0 - e, "val_kl": 4.0 + e} for e in (1, 2, 3)]
    fig = plots.loss_curves(history, CONTEXT)
    neg_elbo, recon, kl = fig.axes
    np.testing.assert_allclose(neg_elbo.lines[0].get_ydata(), [105.0] * 3)
    np.testing.assert_allclose(neg_elbo.lines[1].get_ydata(), [105.0] * 3)
    np.testing.assert_allclose(kl.lines[1].get_ydata(), [5.0, 6.0, 7.0])
    assert [line.get_label() for line in recon.lines] == ["train", "validation"]
    assert all(ax.get_xlabel() == "epoch" and "nats" in ax.get_ylabel() for ax in fig.axes)
    path = plots.savefig(fig, tmp_path / "a" / "b" / "curves.png")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Without validation entries, only the train lines.
    fig = plots.loss_curves([{k: h[k] for k in ("epoch", "recon", "kl")} for h in history])
    assert len(fig.axes[0].lines) == 1


def test_savefig_writes_the_fewest_channels_losslessly(model, x, tmp_path):
    from PIL import Image

    for name, fig, mode in [("grey", plots.image_grid(x, ncols=4), "L"),
                            ("colour", plots.kl_bars(np.array([1.0, 2.0])), "RGB")]:
        for _ in range(2):  # the second rendering: the first one settles the layout
            buffer = io.BytesIO()
            with plots.style():
                fig.savefig(buffer, format="png", dpi=100)  # matplotlib's own RGBA rendering
        reference = np.asarray(Image.open(buffer))[..., :3]  # (H, W, 3)
        path = plots.savefig(fig, tmp_path / "deep" / f"{name}.png")
        image = Image.open(path)
        assert image.mode == mode
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), reference)


def test_latent_scatter_colours_by_label_with_a_legend():
    rng = np.random.default_rng(0)
    mu, labels = rng.standard_normal((60, 2)), np.repeat(np.arange(3), 20)
    fig = plots.latent_scatter(mu, labels, "fashion-mnist", CONTEXT)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["T-shirt/top", "Trouser", "Pullover", "prior: 1σ, 2σ"]
    np.testing.assert_allclose(ax.collections[1].get_offsets(), mu[20:40])
    assert ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError, match="2-D"):
        plots.latent_scatter(rng.standard_normal((5, 3)), labels[:5])


def test_other_figures_draw_and_save(model, x, tmp_path):
    rng = np.random.default_rng(0)
    history = [{"epoch": e, "recon": 30.0 - e, "kl": 2.0} for e in (1, 2)]
    figures = {
        "grid": plots.image_grid(x, ncols=4, context=CONTEXT),
        "samples": plots.prior_samples(model, 12, ncols=6, rng=rng, context=CONTEXT),
        "kl": plots.kl_bars(np.array([0.5, 2.0]), CONTEXT),
        "interp": plots.interpolations(model, x[:2], x[2:4], steps=5, context=CONTEXT),
        "spaces": plots.latent_spaces([("a", rng.standard_normal((9, 2)), np.arange(9) % 3),
                                       ("b", rng.standard_normal((9, 2)), np.arange(9) % 3)],
                                      "mnist", CONTEXT),
        "linear": plots.linear_vae_vs_pca([1.0, 2.0], history, -27.0, [40.0, 70.0], CONTEXT),
        "beta": plots.beta_tradeoff([0.5, 1, 2], [80, 85, 95], [30, 20, 12],
                                    [model.sample(4, rng=rng) for _ in range(3)], CONTEXT),
    }
    assert len(figures["interp"].axes) == 4  # linear and spherical rows for each pair
    assert [ax.get_ylabel() for ax in figures["interp"].axes[:2]] == ["linear", "spherical"]
    assert "2.5" in figures["kl"].axes[0].get_title()  # the total KL
    for name, fig in figures.items():
        assert CONTEXT in titles(fig), name
        path = plots.savefig(fig, tmp_path / f"{name}.png")
        assert path.stat().st_size > 1000, name
