"""``npvae train --labels N``: M2, the semi-supervised VAE, from the command line (issue 23.3).

On tiny fake MNIST files (300 training images with random labels, 60 test images), offline:
the run keeps exactly N labels, balanced across the classes, and hides the others; --resume
keeps the same ones; the summary and ``npvae evaluate`` report the classifier's accuracy; sample
and plot work; every misuse is one error line and exit code 2.
"""

import json
import shutil

import numpy as np
import pytest

import npvae
from npvae.models.m2 import SemiSupervisedVAE
from npvae.run import cli, data, training
from test_cli import TINY, fake_mnist, one_error_line
from test_cli import offline  # noqa: F401  (autouse: no network, caches or system folders)

N_TRAIN, N_TEST = 300, 60
LABELS = ["--labels", "20", "--epochs", "1", "--eval-k", "2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return fake_mnist(tmp_path_factory.mktemp("data"), n_train=N_TRAIN, n_test=N_TEST)


def train_and_capture(argv):
    """Run ``npvae train`` (argv); return its exit code and the x and y it gave
    ``npvae.train``."""
    seen = {}
    train = training.train

    def spy(model, x, y=None, **kwargs):
        seen.update(x=np.array(x), y=None if y is None else np.array(y))
        return train(model, x, y=y, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train", spy)
        code = cli.main(["train", *argv])
    return code, seen


@pytest.fixture(scope="module")
def m2_run(data_dir, tmp_path_factory):
    """An M2 run, ``npvae train --labels 20``, with the data it trained on."""
    out = tmp_path_factory.mktemp("runs") / "m2"
    code, seen = train_and_capture(["--data-dir", str(data_dir), *TINY, *LABELS,
                                    "--out", str(out)])
    assert code == 0
    return out, seen


def fake_training_images(data_dir):
    """The fake training images (N, 784) in [0, 1] and their true labels, read as npvae does."""
    run = data.load_run_data("mnist", data_dir, "files", fallback=False)
    return run.x_train, run.y_train


def test_labels_trains_m2_keeping_n_balanced_labels(m2_run, data_dir):
    out, seen = m2_run
    model = npvae.load(out)
    assert type(model) is SemiSupervisedVAE and model.n_classes == 10
    assert model.config.alpha == 200 and model.config.classifier_dims == (16,)
    summary = json.loads((out / "summary.json").read_text())
    s = summary["settings"]
    assert (s["labels"], s["alpha"], s["labelled_share"]) == (20, 200.0, 0.25)
    # 250 training images (50 held out for validation): 20 labelled, 230 hidden; the labelled
    # ones repeated to a quarter of the hidden ones, round(0.25 · 230 / 20) = 3 times.
    x, y = seen["x"], seen["y"]
    assert summary["labels"] == {"n": 20, "per_class": [2] * 10, "repeated": 3}
    assert (y == -1).sum() == 230 and len(y) == 230 + 3 * 20
    assert np.bincount(y[y >= 0], minlength=10).tolist() == [6] * 10
    distinct, index = np.unique(x[y >= 0], axis=0, return_index=True)
    assert len(distinct) == 20  # 20 images, each labelled 3 times
    # Each kept label is the image's true label, and no labelled image is also among the hidden.
    x_all, y_all = fake_training_images(data_dir)
    rows = {row.tobytes(): label for row, label in zip(x_all, y_all)}
    assert all(rows[row.tobytes()] == y[y >= 0][i] for row, i in zip(distinct, index))
    hidden = {row.tobytes() for row in x[y == -1]}
    assert not hidden & {row.tobytes() for row in distinct}
    assert np.isfinite(json.loads((out / "history.json").read_text())[0]["val_loss"])


def test_the_summary_accuracy_is_the_classifiers_on_the_test_images(m2_run, data_dir):
    out, _ = m2_run
    summary = json.loads((out / "summary.json").read_text())
    test = summary["test"]
    assert 0 <= test["accuracy"] <= 1 and test["n"] == N_TEST
    assert np.isfinite([test["elbo"], test["log_likelihood"]]).all()
    model = npvae.load(out)
    run = data.load_run_data("mnist", data_dir, "files", fallback=False)
    x_test = data.binarize(run.x_test, np.random.default_rng(cli.TEST_BINARIZE_SEED))
    assert test["accuracy"] == pytest.approx(
        npvae.study.semi_supervised.accuracy(model, x_test, run.y_test))
    assert test["accuracy"] == pytest.approx(float((model.predict(x_test) == run.y_test).mean()))


def test_train_prints_m2_and_its_accuracy(data_dir, tmp_path, capsys):
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, *LABELS, "--labels", "30",
                     "--alpha", "50", "--labelled-share", "0.5", "--out",
                     str(tmp_path / "m2")]) == 0
    stdout = capsys.readouterr().out
    assert "M2 (semi-supervised VAE) with 30 labels (3 per class) and 220 hidden" in stdout
    assert "repeated ×4 per epoch, alpha 50" in stdout  # round(0.5 · 220 / 30) = 4
    assert "test accuracy" in stdout and "log p(x|y)" in stdout
    assert npvae.load(tmp_path / "m2").config.alpha == 50


def test_evaluate_reports_the_accuracy(m2_run, data_dir, capsys):
    out, _ = m2_run
    accuracy = json.loads((out / "summary.json").read_text())["test"]["accuracy"]
    assert cli.main(["evaluate", str(out), "--k", "2", "--data-dir", str(data_dir)]) == 0
    stdout = capsys.readouterr().out
    assert f"accuracy      {accuracy:.2%}" in stdout
    assert "SemiSupervisedVAE" in stdout and "log p(x|y)" in stdout and "not computed" in stdout


def test_resume_keeps_the_same_labelled_subset(m2_run, data_dir, tmp_path):
    out, first = m2_run
    copy = tmp_path / "m2"
    shutil.copytree(out, copy)
    code, resumed = train_and_capture(["--resume", str(copy), "--epochs", "2", "--eval-k", "0",
                                       "--quiet"])
    assert code == 0 and len(json.loads((copy / "history.json").read_text())) == 2
    np.testing.assert_array_equal(resumed["y"], first["y"])
    np.testing.assert_array_equal(resumed["x"], first["x"])
    # Another --seed draws other labels: the subset is the seed's, not a fixed one.
    code, other = train_and_capture(["--data-dir", str(data_dir), *TINY, *LABELS, "--seed", "1",
                                     "--eval-k", "0", "--quiet", "--out", str(tmp_path / "s1")])
    assert code == 0 and not np.array_equal(other["x"][other["y"] >= 0],
                                            first["x"][first["y"] >= 0])


def test_sample_label_and_plot_an_m2_run(m2_run, tmp_path, capsys, monkeypatch):
    out, _ = m2_run
    drawn, sample = [], npvae.CVAE.sample  # M2 draws with the CVAE's sample(labels)
    monkeypatch.setattr(npvae.CVAE, "sample", lambda model, labels, *args, **kwargs: (
        drawn.append(np.asarray(labels)) or sample(model, labels, *args, **kwargs)))
    png = tmp_path / "threes.png"
    assert cli.main(["sample", str(out), "--label", "3", "--n", "9", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and drawn[-1].tolist() == [3] * 9
    assert cli.main(["sample", str(out), "--label", "10", "--out", str(png)]) == 2
    assert "--label 10 is not a class of this SemiSupervisedVAE" in one_error_line(
        capsys.readouterr().err, "sample")
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "figs")]) == 0
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    assert {"samples.png", "loss_curves.png", "reconstructions.png"} <= names
    assert "skipped interpolation.png" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--labels", "20", "--conditional"], "does not go with --conditional (M2 is a CVAE"),
    (["--labels", "20", "--latent-dims", "2", "2"], "does not go with --latent-dims"),
    (["--labels", "20", "--objective", "iwae"], "does not go with --objective iwae (M2 trains "
                                                "on the ELBO only)"),
    (["--labels", "20", "--free-bits", "1"], "does not go with --free-bits"),
    (["--labels", "20", "--early-stop", "2"], "--early-stop (it would choose the epoch by the "
                                              "validation images' labels"),
    (["--alpha", "10"], "--alpha sets M2, the semi-supervised VAE; add --labels N"),
    (["--labelled-share", "0.5", "--alpha", "1"], "--alpha and --labelled-share set M2"),
    (["--labels", "5"], "--labels 5 is fewer than the 10 classes"),
    (["--labels", "251"], "--labels 251 asks for more labels than the 250 training examples"),
])
def test_label_misuse_is_one_line_and_exit_2(flags, message, data_dir, tmp_path, capsys):
    tiny = ["--val", "50", "--hidden", "16", "--epochs", "1"]  # no --latent-dim: --latent-dims
    assert cli.main(["train", "--data-dir", str(data_dir), *tiny, *flags,
                     "--out", str(tmp_path / "r")]) == 2
    assert message in one_error_line(capsys.readouterr().err, "train")
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


def test_labels_on_data_without_labels_or_too_few_of_a_class(tmp_path, capsys):
    x = np.random.default_rng(0).uniform(size=(100, 8, 8))
    np.save(tmp_path / "x.npy", x)
    assert cli.main(["train", "--data", str(tmp_path / "x.npy"), "--labels", "10",
                     "--out", str(tmp_path / "a")]) == 2
    assert "--labels 10 trains on labels, but" in one_error_line(capsys.readouterr().err, "train")
    np.savez(tmp_path / "few.npz", x=x, y=np.array([0] * 95 + [1] * 5))  # class 1: 5 examples
    assert cli.main(["train", "--data", str(tmp_path / "few.npz"), "--labels", "20",
                     "--out", str(tmp_path / "b")]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "--labels 20: class 1 has" in line and "ask for fewer labels" in line


def test_resume_refuses_other_labels(m2_run, tmp_path, capsys):
    out, _ = m2_run
    copy = tmp_path / "m2"
    shutil.copytree(out, copy)
    assert cli.main(["train", "--resume", str(copy), "--epochs", "2", "--labels", "30"]) == 2
    assert "--labels 30 (saved: 20) differ" in one_error_line(capsys.readouterr().err, "train")
