"""Tests for the npvae command line, end to end on tiny fake MNIST files written here.

Most tests call ``cli.main`` in-process; the Ctrl-C test runs ``python -m npvae.run.cli`` in
subprocesses, interrupts one with SIGINT and resumes it to a bit-exact result.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import npvae
from npvae.run import cli
from npvae.run import data
from npvae.run import plots  # noqa: F401  (matplotlib reads its font cache now, before HOME moves)
from npvae.core.errors import CheckpointError

sys.path.insert(0, str(Path(__file__).parent))
from test_data import write_idx  # noqa: E402  (the IDX writer of the data tests)

TINY = ["--val", "50", "--hidden", "16", "--latent-dim", "2", "--batch-size", "25"]


def fake_mnist(folder, n_train, n_test, seed=0):
    """Random uint8 images and labels in the MNIST file layout under folder/mnist."""
    rng = np.random.default_rng(seed)
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        write_idx(folder / "mnist" / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, size=(n, 28, 28)))
        write_idx(folder / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return folder


def closed_port_url():
    """A URL on 127.0.0.1 that refuses connections at once (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return fake_mnist(tmp_path_factory.mktemp("data"), n_train=300, n_test=60)


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No real caches, system folders or network: only the data the test writes."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPVAE_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(data, "MIRRORS", {name: [closed_port_url()] for name in data.DATASETS})


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """One trained run folder, shared by the evaluate and sample tests."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "2",
                     "--eval-k", "5", "--out", str(out), "--quiet"]) == 0
    return out


def one_error_line(err, command):
    """Assert stderr ends in exactly one error line for ``command``, without a traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"npvae {command}: error:")]
    assert len(lines) == 1 and err.rstrip("\n").endswith(lines[0]), err
    return lines[0]


# --------------------------------------------------------------------------- happy paths


def test_help_shows_examples(capsys):
    for argv in (["--help"], ["train", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "npvae train --dataset" in out
    assert "--resume" in out and "--hidden 0" in out


def test_train_writes_checkpoint_history_and_summary(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "2",
                     "--eval-k", "5", "--out", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.csv",
                                                     "history.json", "summary.json"]
    assert "250 training, 50 validation examples; model 784-16-2" in stdout
    assert sum(line.startswith("epoch ") for line in stdout.splitlines()) == 2
    assert "test ELBO" in stdout and "IWAE bound, k = 5" in stdout

    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and "val_loss" in history[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["test"]["n"] == 60 and summary["test"]["k"] == 5
    assert summary["test"]["elbo"] == pytest.approx(-(summary["test"]["recon"]
                                                      + summary["test"]["kl"]))
    assert summary["test"]["log_likelihood"] > summary["test"]["elbo"] - 50
    assert summary["seconds_per_epoch"] > 0
    model = npvae.load(out)
    assert model.config.hidden_dims == (16,) and model.latent_dim == 2


def test_hidden_zero_is_a_linear_vae(data_dir, tmp_path):
    out = tmp_path / "linear"
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--hidden", "0",
                     "--epochs", "1", "--eval-k", "0", "--out", str(out), "--quiet"]) == 0
    assert npvae.load(out).config.hidden_dims == ()
    summary = json.loads((out / "summary.json").read_text())
    assert "log_likelihood" not in summary["test"]  # --eval-k 0 skips it


def test_evaluate_prints_the_table(run, data_dir, capsys):
    assert cli.main(["evaluate", str(run), "--k", "20", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0] for line in out.splitlines()}
    assert {"checkpoint", "data", "ELBO", "log", "active", "KL"} <= rows
    assert "mnist test, 60 examples, binarized" in out and "k = 20" in out
    assert "of 2" in out  # active units of Z = 2


def test_sample_writes_a_png(run, tmp_path, capsys):
    png = tmp_path / "samples.png"
    assert cli.main(["sample", str(run / "checkpoint.npz"), "--n", "16", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    image = matplotlib.image.imread(png)
    assert image.ndim in (2, 3) and image.shape[0] > 50  # greyscale or RGB
    assert f"wrote {png}" in capsys.readouterr().out


def test_plot_draws_the_figures_of_a_run(run, tmp_path, capsys):
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert {"samples.png", "loss_curves.png", "reconstructions.png", "kl_per_dim.png",
            "manifold.png", "latent_scatter.png"} <= set(names)  # Z = 2: scatter and manifold
    assert capsys.readouterr().out.count("wrote ") == len(names)


def test_resume_of_a_finished_run_trains_longer_bit_exact(run, data_dir, tmp_path):
    longer = tmp_path / "three"
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "3",
                     "--eval-k", "0", "--out", str(longer), "--quiet"]) == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "checkpoint.npz").write_bytes((run / "checkpoint.npz").read_bytes())
    assert cli.main(["train", "--resume", str(copy), "--epochs", "3", "--eval-k", "0",
                     "--quiet"]) == 0  # the data folder is remembered
    a, b = npvae.load(longer), npvae.load(copy)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name


@pytest.fixture(scope="module")
def cvae_run(data_dir, tmp_path_factory):
    """A CVAE trained by ``npvae train --conditional`` on the fake labels."""
    out = tmp_path_factory.mktemp("runs") / "cvae"
    assert cli.main(["train", "--conditional", "--data-dir", str(data_dir), *TINY, "--epochs",
                     "2", "--eval-k", "5", "--out", str(out), "--quiet"]) == 0
    return out


def test_train_conditional_trains_a_cvae_on_the_labels(cvae_run):
    model = npvae.load(cvae_run)
    assert isinstance(model, npvae.CVAE) and model.n_classes == data.N_CLASSES
    summary = json.loads((cvae_run / "summary.json").read_text())
    assert summary["settings"]["conditional"] is True
    assert summary["config"]["n_classes"] == 10 and np.isfinite(summary["test"]["elbo"])
    assert np.isfinite(summary["test"]["log_likelihood"])


def test_sample_label_draws_that_class(cvae_run, tmp_path, capsys, monkeypatch):
    drawn = []
    sample = npvae.CVAE.sample

    def spy(model, labels, rng=None, draw=False):
        drawn.append(np.asarray(labels))
        return sample(model, labels, rng, draw)

    monkeypatch.setattr(npvae.CVAE, "sample", spy)
    png = tmp_path / "threes.png"
    assert cli.main(["sample", str(cvae_run), "--label", "3", "--n", "9", "--out",
                     str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn[-1].tolist() == [3] * 9
    assert cli.main(["sample", str(cvae_run), "--n", "10", "--out", str(png)]) == 0
    assert drawn[-1] == 10  # no --label: every class in turn


def test_sample_draw_writes_binary_pixels(run, tmp_path, monkeypatch):
    images = []
    sample = npvae.VAE.sample

    def spy(model, n, rng=None, draw=False):
        images.append(sample(model, n, rng, draw))
        return images[-1]

    monkeypatch.setattr(npvae.VAE, "sample", spy)
    for flag in ([], ["--draw"]):
        assert cli.main(["sample", str(run), "--n", "16", *flag, "--out",
                         str(tmp_path / "s.png")]) == 0
    means, draws = images
    assert not np.isin(means, [0, 1]).all() and np.isin(draws, [0, 1]).all()


def test_evaluate_and_plot_a_cvae_run(cvae_run, data_dir, tmp_path, capsys):
    assert cli.main(["evaluate", str(cvae_run), "--k", "10", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "CVAE" in out and "log p(x|y)" in out
    assert cli.main(["plot", str(cvae_run), "--out", str(tmp_path / "figs")]) == 0
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    assert {"samples.png", "loss_curves.png", "reconstructions.png", "kl_per_dim.png",
            "latent_scatter.png"} <= names


def test_label_errors_name_the_fix(run, cvae_run, tmp_path, capsys):
    for argv, message in [
        (["sample", str(run), "--label", "3"], "--label is for a conditional model"),
        (["sample", str(cvae_run), "--label", "10"], "--label 10 is not a class of this CVAE"),
    ]:
        assert cli.main([*argv, "--out", str(tmp_path / "s.png")]) == 2
        assert message in one_error_line(capsys.readouterr().err, "sample")


def test_a_run_saved_before_the_conditional_setting_resumes(run, tmp_path):
    """Settings added later (conditional, textbook) take their defaults in older runs."""
    model, meta = npvae.run.checkpoint.load_with_metadata(run)
    state = npvae.run.checkpoint.load_training_state(run)
    old = {k: v for k, v in meta["args"].items() if k not in cli.ADDED_SETTINGS}
    folder = tmp_path / "old"
    npvae.run.checkpoint.save(folder / "checkpoint.npz", model, _adam(model, state), state.history,
                          np.random.default_rng(0) if state.rng_state is None else
                          _generator(state.rng_state),
                          {**{k: meta[k] for k in ("dataset", "data_dir")}, "args": old},
                          state.progress)
    assert cli.main(["train", "--resume", str(folder), "--epochs", "3", "--eval-k", "0",
                     "--quiet"]) == 0
    assert len(npvae.run.checkpoint.load_training_state(folder).history) == 3


def _adam(model, state):
    optimizer = npvae.Adam(model.params)
    optimizer.load_state_dict(state.optimizer_state)
    return optimizer


def _generator(rng_state):
    rng = np.random.default_rng()
    npvae.run.checkpoint.set_state(rng, rng_state)
    return rng


def test_textbook_flag_trains_with_the_textbook_adam(data_dir, tmp_path, monkeypatch):
    """--textbook chooses the optimizer's form (the loss has one form)."""
    forms = []
    inner = npvae.optim.Adam.step

    def spy(opt, grads):
        forms.append(opt.fused)
        return inner(opt, grads)

    monkeypatch.setattr(npvae.optim.Adam, "step", spy)
    for flags, fused in [([], True), (["--textbook"], False)]:
        forms.clear()
        assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "1",
                         "--eval-k", "0", "--val", "0", "--out", str(tmp_path / str(fused)),
                         "--quiet", *flags]) == 0
        assert forms and set(forms) == {fused}


# --------------------------------------------------------------------------- user errors


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    (["--lr", "-1"], "argument --lr: must be a positive number, got -1"),
    (["--lr", "fast"], "argument --lr: expected a positive number, got 'fast'"),
    (["--batch-size", "0"], "argument --batch-size: must be a positive integer"),
    (["--beta", "nan"], "argument --beta: must be a number ≥ 0, got nan"),
    (["--likelihood", "poisson"], "argument --likelihood: invalid choice: 'poisson'"),
])
def test_bad_flag_values_exit_2_with_one_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in one_error_line(err, "train")


def test_user_errors_exit_2_with_one_line(run, data_dir, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes((run / "checkpoint.npz").read_bytes()[:3000])
    d = str(data_dir)
    cases = [
        (["train", "--data-dir", d, *TINY, "--out", str(a_file / "run")],
         "cannot write to the output folder"),
        (["train", "--data-dir", d, *TINY, "--hidden", "16", "0", "--out", str(tmp_path / "r2")],
         "--hidden takes positive layer sizes, got 16 0"),
        (["train", "--data-dir", d, "--val", "300", "--out", str(tmp_path / "r3")],
         "--val 300 leaves no training examples"),
        (["train", "--data-dir", d, *TINY, "--out", str(run)],
         "already holds a run (checkpoint.npz); continue it with --resume"),
        (["train", "--resume", str(run), "--latent-dim", "3"],
         "--latent-dim 3 (saved: 2) differ"),
        (["train", "--resume", str(tmp_path / "nowhere")], "no checkpoint at"),
        (["evaluate", str(tmp_path / "nowhere.npz")], "no checkpoint at"),
        (["evaluate", str(corrupt), "--data-dir", d], "truncated or corrupt"),
        (["sample", str(run), "--out", str(a_file / "s.png")], "cannot write"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        line = one_error_line(capsys.readouterr().err, argv[0])
        assert message in line, (argv, line)


def test_missing_data_offline_says_where_to_put_it(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["train", "--data-dir", str(empty), "--out", str(tmp_path / "r"),
                     "--no-fallback"]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "could not download train-images-idx3-ubyte.gz" in line
    assert "The mnist train split needs the files train-images-idx3-ubyte.gz" in line
    assert f"put them in {empty / 'mnist'}" in line and "--data-dir" in line
    # Neither the folder made for the download nor the run folder is left behind, empty.
    assert not (empty / "mnist").exists() and not (tmp_path / "r").exists()


def test_offline_mnist_falls_back_to_the_bundled_split(tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["train", *TINY, "--epochs", "1", "--eval-k", "0", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("the MNIST test split that comes with npvae") == 1
    assert "8,000 images to train on, 2,000 held out" in captured.err
    assert "--no-fallback" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["source"] == "bundled" and summary["test"]["n"] == 2000
    # evaluate finds the same 2,000 held-out images, without a word about falling back.
    assert cli.main(["evaluate", str(out), "--k", "2"]) == 0
    captured = capsys.readouterr()
    assert "bundled with npvae test, 2000 examples" in captured.out
    assert "comes with npvae" not in captured.err


def test_own_data_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.uniform(size=(60, 5, 6)).astype(np.float32), y=rng.integers(0, 3, 60))
    out = tmp_path / "r"
    assert cli.main(["train", "--data", str(path), "--val", "5", "--hidden", "8",
                     "--latent-dim", "2", "--epochs", "2", "--conditional", "--eval-k", "2",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["n"] == 12 and summary["config"]["input_dim"] == 30
    assert summary["config"]["n_classes"] == 3
    assert cli.main(["evaluate", str(out), "--k", "2"]) == 0
    assert f"{path} test, 12 examples" in capsys.readouterr().out


@pytest.mark.parametrize("array, message", [
    (np.arange(20, dtype=np.uint8).reshape(10, 2), "dtype uint8; npvae needs floats in [0, 1]"),
    (np.full((20, 3), 2.0), "values in [2, 2]"),
    (np.zeros((20, 2, 2, 2)), "expected (N, D) vectors or (N, H, W) images"),
    (np.zeros((3, 4)), "holds 3 examples"),
])
def test_own_data_file_refused_with_the_fix(tmp_path, capsys, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    assert cli.main(["train", "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    assert message in one_error_line(capsys.readouterr().err, "train")
    assert not (tmp_path / "r").exists()


def test_divergence_exits_2_and_keeps_nothing_bad(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--lr", "1e6",
                     "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "training diverged at epoch 1" in line and "--lr 0.001" in line
    assert not (out / "checkpoint.npz").exists()


def test_verbose_shows_the_traceback(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        cli.main(["--verbose", "evaluate", str(tmp_path / "nowhere.npz")])
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        cli.main(["evaluate", str(tmp_path / "nowhere.npz"), "--verbose"])


# --------------------------------------------------------------------------- Ctrl-C, resume


def test_sigint_saves_and_resume_is_bit_exact(tmp_path):
    """Interrupt `npvae train` with SIGINT mid-run, resume it, and compare with a run that was
    never interrupted: the parameters must be identical, bit for bit."""
    folder = fake_mnist(tmp_path / "data", n_train=850, n_test=20, seed=1)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1",
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "http_proxy": closed_port_url(),
           "https_proxy": closed_port_url()}
    env.pop("NPVAE_DATA_DIR", None)

    def command(out):
        return [sys.executable, "-m", "npvae.run.cli", "train", "--data-dir", str(folder),
                "--val", "50", "--hidden", "16", "--latent-dim", "2", "--batch-size", "4",
                "--epochs", "3", "--eval-k", "0", "--out", str(out)]

    reference = subprocess.Popen(command(tmp_path / "whole"), env=env, text=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = subprocess.Popen(command(tmp_path / "cut"), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in proc.stdout:  # epoch 1 is saved: epoch 2's 200 steps are under way
            if line.startswith("epoch 1/3"):
                break
        assert proc.poll() is None, "training ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"Resume with: npvae train --resume {tmp_path / 'cut'}" in err
    cut = npvae.run.checkpoint.load_training_state(tmp_path / "cut")
    assert len(cut.history) == 1 and cut.progress["step"] > 0  # stopped within epoch 2
    assert f"interrupted at epoch 2, step {cut.progress['step']} of 200; saved" in err

    resumed = subprocess.run(command(tmp_path / "cut")[:4] + [
        "--resume", str(tmp_path / "cut")], env=env, text=True, capture_output=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at epoch 2, step {cut.progress['step']} of 200" in resumed.stdout
    assert reference.wait(timeout=60) == 0, reference.stderr.read()
    reference.stderr.close()

    a, b = npvae.load(tmp_path / "whole"), npvae.load(tmp_path / "cut")
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    histories = [json.loads((tmp_path / run / "history.json").read_text())
                 for run in ("whole", "cut")]
    for a, b in zip(*histories, strict=True):  # the same numbers, but for the timings
        for r in (a, b):
            del r["seconds"], r["examples_per_s"]
        assert a == b
