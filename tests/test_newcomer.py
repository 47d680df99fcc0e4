"""What a newcomer meets first (issue 24, items 1, 2 and 10): the version, ``python -m npvae``,
MNIST's ``--test-split-only`` offline, one line for a failed download, ``history.csv`` beside
``history.json``, and the message for an ``.npz`` without ``x``.

Every test runs offline: HOME, the cache and the system folders point into tmp_path, and every
mirror is a port on 127.0.0.1 that refuses connections.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import npvae
from npvae.run import cli, data, runs
from npvae.core.errors import DataError
from test_cli import TINY, closed_port_url, fake_mnist  # tests/ is on sys.path


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPVAE_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    dead = [closed_port_url(), closed_port_url()]  # two mirrors, both refusing
    monkeypatch.setattr(data, "MIRRORS", {name: dead for name in data.DATASETS})


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"npvae {npvae.__version__}"


def test_python_dash_m_npvae_is_the_command(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "npvae", "--version"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"npvae {npvae.__version__}"
    done = subprocess.run([sys.executable, "-m", "npvae", "gradcheck", "--plant", "nonsense"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "invalid choice: 'nonsense'" in done.stderr


def test_test_split_only_uses_the_bundled_mnist_offline():
    """No MNIST files anywhere and no network: the test split is the copy inside npvae (the
    same canonical files), held out exactly as if it had been found on disk."""
    run = data.load_run_data("mnist", source="test-split", seed=3)
    assert (len(run.x_train), len(run.x_test)) == (8000, 2000)
    assert "bundled with npvae" in run.origin
    images, labels = data.load_bundled()
    x_train, y_train, x_test, y_test = data.hold_out_test(
        data.to_float(images), labels, np.random.default_rng(3))
    np.testing.assert_array_equal(run.x_test, x_test)
    np.testing.assert_array_equal(run.y_train, y_train)
    x, y = data.load_test_data("mnist", source="test-split", seed=3)  # what evaluate reloads
    np.testing.assert_array_equal(x, x_test)


def test_test_split_only_prefers_the_files_on_disk(tmp_path):
    folder = fake_mnist(tmp_path / "data", n_train=0, n_test=50)
    run = data.load_run_data("mnist", folder, source="test-split")
    assert (len(run.x_train), len(run.x_test)) == (40, 10)
    assert run.origin == "mnist test split only"
    with pytest.raises(DataError, match="could not download t10k"):  # no such fallback for it
        data.load_run_data("fashion-mnist", source="test-split")


def test_an_offline_fallback_says_why_in_one_line_and_the_notice_in_another(capsys):
    run = data.load_run_data("mnist")
    assert run.source == "bundled"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("npvae: could not download train-images-idx3-ubyte.gz: http://")
    assert err[0].count("http://127.0.0.1") == 2  # both mirrors, on the one line
    assert "the MNIST test split that comes with npvae" in err[1]


def test_an_offline_cli_error_is_one_line(tmp_path, capsys):
    assert cli.main(["train", "--dataset", "fashion-mnist", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("npvae train: error: could not download"), err


def test_history_csv_beside_history_json(tmp_path):
    folder = fake_mnist(tmp_path / "data", n_train=200, n_test=20)
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(folder), *TINY, "--epochs", "2",
                     "--eval-k", "0", "--out", str(out), "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(history) == 2
    for row, record in zip(rows, history):
        assert list(row) == list(record)
        assert {key: float(value) for key, value in row.items()} == pytest.approx(record, rel=0,
                                                                                    abs=0)


def test_history_csv_leaves_a_missing_key_empty():
    text = runs.history_csv([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "val": 1.0}])
    assert text == "epoch,loss,val\n1,0.5,\n2,0.25,1.0\n"


def test_an_npz_without_x_is_called_readable_and_the_fix_given_once(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, images=np.zeros((20, 4)))
    with pytest.raises(DataError) as info:
        data.load_array_file(path)
    message = str(info.value)
    assert "not a readable" not in message and message.count("np.savez") == 1
    assert "holds the arrays images, but not 'x'" in message


def test_the_synthetic_linear_vae_pca_demo_writes_under_synthetic(monkeypatch):
    from test_demos_beyond import DEMOS, _demo
    monkeypatch.syspath_prepend(str(DEMOS))
    module = _demo("linear_vae_pca")
    out = module.out_dir
    assert out(module.build_parser().parse_args([])) == "figures/linear_vae_pca/synthetic"
    assert out(module.build_parser().parse_args(["--source", "images", "--dataset",
                                                 "fashion-mnist"])) == \
        "figures/linear_vae_pca/fashion-mnist"
    assert out(module.build_parser().parse_args(["--out", "x"])) == "x"


def test_a_gaussian_runs_positive_elbo_is_explained(tmp_path, capsys):
    """Issue 24.2: a Gaussian likelihood's ELBO may be positive, and the output says why,
    with its sigma; a Bernoulli run's output has no such note."""
    from npvae.run.cli import _summary_text

    summary = {"epochs": 1, "seconds_per_epoch": 1.0, "examples_per_s": 10.0, "data": "mine",
               "dataset": "mine", "test": {"elbo": 812.3, "recon": -830.0, "kl": 17.7, "n": 5},
               "config": npvae.VAE(4, (3,), 2, likelihood="gaussian", sigma=0.05).config.to_dict()}
    text = _summary_text(summary, tmp_path)
    assert "sigma = 0.05, variance c = 0.0025" in text and "may be positive" in text
    summary["config"] = npvae.VAE(4, (3,), 2).config.to_dict()
    assert "may be positive" not in _summary_text(summary, tmp_path)
