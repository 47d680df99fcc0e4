"""Issue 24, items 3, 4, 6 and 7: a run on one's own data (--data FILE) is first-class (its image
shape and name saved, every figure drawn for any (H, W) or skipped with the reason, titles and
summary naming the data); a conditional model's samples put one class per column under a title
that is never cut; ``sample --draw`` never replaces samples.png."""

import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

import npvae
from npvae.run import checkpoint, cli, plots

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import fake_mnist, offline, one_error_line  # noqa: E402,F401

SMALL = ["--val", "20", "--hidden", "16", "--latent-dim", "2", "--batch-size", "25",
         "--epochs", "1", "--eval-k", "0", "--quiet"]


def own_file(path, x_shape, labels=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random(x_shape).astype(np.float32)
    arrays = {"x": x, **({"y": rng.integers(0, 3, x_shape[0])} if labels else {})}
    np.savez(path, **arrays)
    return path


def texts_inside(fig):
    """True when every title, axis label and suptitle lies inside the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    texts += [fig._suptitle] if fig._suptitle is not None else []
    for text in texts:
        if not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -0.5 or box.y0 < -0.5 or box.x1 > width + 0.5 or box.y1 > height + 0.5:
            return False
    return True


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """A run on 12 × 20 images (non-square) from a file named 'wide.npz'."""
    folder = tmp_path_factory.mktemp("wide")
    data = own_file(folder / "wide.npz", (150, 12, 20))
    assert cli.main(["train", "--data", str(data), *SMALL, "--out", str(folder / "R")]) == 0
    return folder / "R"


def test_a_data_file_run_saves_its_image_shape_and_name(wide_run):
    _, meta = checkpoint.load_with_metadata(wide_run)
    assert meta["image_shape"] == [12, 20] and meta["data_name"] == "wide.npz"
    summary = json.loads((wide_run / "summary.json").read_text())
    assert summary["data"] == "wide.npz"


def test_the_summary_line_names_the_data_file(tmp_path, capsys):
    data = own_file(tmp_path / "faces.npz", (120, 8, 8), labels=False)
    assert cli.main(["train", "--data", str(data), *SMALL[:-1], "--out",
                     str(tmp_path / "R")]) == 0
    out = capsys.readouterr().out
    assert "on faces.npz" in out and "on mnist" not in out


def test_the_default_run_folder_is_named_after_the_data_file(tmp_path, monkeypatch):
    data = own_file(tmp_path / "faces.npz", (120, 8, 8), labels=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--data", str(data), *SMALL]) == 0
    assert (tmp_path / "runs" / "faces" / "checkpoint.npz").is_file()


def test_plot_draws_every_figure_of_non_square_images_titled_by_the_data(wide_run, tmp_path,
                                                                          capsys, monkeypatch):
    titles = []
    real = plots.savefig

    def spy(fig, path, dpi=100):
        titles.extend(ax.title.get_text() for ax in fig.axes)
        titles.append(fig._suptitle.get_text() if fig._suptitle is not None else "")
        return real(fig, path, dpi)

    monkeypatch.setattr(plots, "savefig", spy)
    assert cli.main(["plot", str(wide_run), "--out", str(tmp_path / "F")]) == 0
    out = capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "F").iterdir())
    assert written == ["interpolation.png", "kl_per_dim.png", "latent_scatter.png",
                       "loss_curves.png", "manifold.png", "reconstructions.png", "samples.png"]
    assert "skipped" not in out
    joined = " ".join(titles)
    assert "wide.npz" in joined and "MNIST" not in joined


def test_images_are_tiled_at_their_own_shape():
    images = np.arange(2 * 6, dtype=float).reshape(2, 6) / 12  # two 2 × 3 images
    with plots.image_shape((2, 3)):
        canvas = plots.tile(images, ncols=2, pad=1)
    assert canvas.shape == (2, 7)
    np.testing.assert_allclose(canvas[:, :3], images[0].reshape(2, 3))
    np.testing.assert_allclose(canvas[:, 4:], images[1].reshape(2, 3))
    with pytest.raises(ValueError, match="not square"):
        plots.tile(images, ncols=2)  # outside the block, the shape is unknown again


def test_sample_draws_non_square_images(wide_run, tmp_path):
    assert cli.main(["sample", str(wide_run), "--out", str(tmp_path / "s.png"), "--n",
                     "6"]) == 0
    assert (tmp_path / "s.png").is_file()


def test_vectors_of_no_shape_skip_the_image_figures_and_say_why(tmp_path, capsys):
    data = own_file(tmp_path / "vectors.npz", (150, 15), labels=False)
    assert cli.main(["train", "--data", str(data), *SMALL, "--out", str(tmp_path / "R")]) == 0
    assert cli.main(["plot", str(tmp_path / "R"), "--out", str(tmp_path / "F")]) == 0
    out = capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "F").iterdir())
    assert written == ["kl_per_dim.png", "latent_scatter.png", "loss_curves.png"]
    for name in ("samples.png", "manifold.png", "reconstructions.png", "interpolation.png"):
        assert f"skipped {name}: the images' shape is unknown" in out


# --------------------------------------------------------------------------- sample


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cvae")
    data_dir = fake_mnist(folder / "data", n_train=150, n_test=40)
    assert cli.main(["train", "--data-dir", str(data_dir), *SMALL, "--conditional",
                     "--out", str(folder / "R")]) == 0
    return folder / "R"


def test_conditional_samples_put_one_class_per_column(cvae_run, monkeypatch, tmp_path):
    seen = {}
    real = plots.prior_samples

    def spy(model, n, ncols, **kwargs):
        seen.update(ncols=ncols, n_classes=model.n_classes)
        fig = real(model, n, ncols, **kwargs)
        seen.update(inside=texts_inside(fig), title=fig.axes[0].get_title())
        return fig

    monkeypatch.setattr(plots, "prior_samples", spy)
    assert cli.main(["sample", str(cvae_run), "--out", str(tmp_path / "s.png")]) == 0
    assert seen["ncols"] == seen["n_classes"] == 10  # sample i has class i mod 10: its column
    assert seen["inside"] and "one class per column" in seen["title"]


def test_a_column_count_that_mixes_classes_is_refused(cvae_run, tmp_path, capsys):
    assert cli.main(["sample", str(cvae_run), "--ncols", "8", "--out",
                     str(tmp_path / "s.png")]) == 2
    assert "would mix classes" in capsys.readouterr().err


@pytest.mark.parametrize("n, ncols, label", [(64, 10, None), (8, 3, 3), (2, 1, 0), (4, 2, 5)])
def test_no_sample_title_or_caption_is_ever_cut(cvae_run, n, ncols, label):
    model, meta = checkpoint.load_with_metadata(cvae_run)
    context = plots.run_label("fashion-mnist", 120, model.latent_dim)
    labels = None if label is None else np.full(n, label)
    for draw in (False, True):
        fig = plots.prior_samples(model, n, ncols, rng=np.random.default_rng(0),
                                  context=context, labels=labels, draw=draw)
        assert texts_inside(fig)
        matplotlib.pyplot.close(fig)


def test_sample_draw_without_out_keeps_samples_png(cvae_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sample", str(cvae_run)]) == 0
    before = (tmp_path / "samples.png").read_bytes()
    assert cli.main(["sample", str(cvae_run), "--draw"]) == 0
    assert (tmp_path / "samples.png").read_bytes() == before
    assert (tmp_path / "samples_draws.png").is_file()


@pytest.mark.parametrize("ncols", [1, 2, 4, 10])
def test_no_image_grid_title_is_cut(ncols):
    images = np.random.default_rng(0).random((ncols * 2, 16))
    fig = plots.image_grid(images, ncols, title="Reconstructions of the held-out images",
                           context=plots.run_label("fashion-mnist", 120, (20, 10)))
    assert texts_inside(fig)
    matplotlib.pyplot.close(fig)


# --------------------------------------------------------------------------- item 4


def test_a_corrupt_file_in_a_named_data_dir_is_an_error_not_a_fallback(tmp_path, offline,
                                                                       capsys):
    folder = fake_mnist(tmp_path / "data", n_train=10, n_test=10) / "mnist"
    for f in folder.glob("train-*"):
        f.unlink()  # offline, no training files: the bundled copy would be used
    bad = folder / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    code = cli.main(["train", "--data-dir", str(tmp_path / "data"), *SMALL, "--out",
                     str(tmp_path / "R")])
    line = one_error_line(capsys.readouterr().err, "train")
    assert code == 2 and str(bad) in line and "does not fall back" in line
    assert not (tmp_path / "R" / "checkpoint.npz").exists()


@pytest.mark.parametrize("field, value", [("image_shape", [12]), ("image_shape", [0, 5]),
                                          ("image_shape", "12x20"), ("data_name", 7)])
def test_the_schema_refuses_a_malformed_image_shape_or_data_name(wide_run, tmp_path, field,
                                                                 value):
    with np.load(wide_run / "checkpoint.npz", allow_pickle=False) as f:
        arrays = dict(f)
    extra = json.loads(str(arrays["extra"]))
    extra[field] = value
    arrays["extra"] = np.array(json.dumps(extra))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(npvae.CheckpointError, match=f"entry {field}="):
        checkpoint.load_with_metadata(tmp_path / "bad.npz")
