"""The defects a fault-injection run found (issue 16), each reproduced here: locked run folders,
checkpoints with NaN weights or malformed metadata, requests too large for memory, a data
folder with an unusable file, a resume on other data or with nothing left to train, stale
temporary files, and the messages of the CLI and the API.

The divergence guard (a NaN validation loss, exploding weights), the model RNG after a resume
and SIGTERM are in test_training.py; empty folders after a failed download or run, and the
bundled-MNIST fallback, in test_cli.py.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.run import checkpoint
from npvae.run import cli
from npvae.run import data
from npvae.run import plots
from npvae.run import runs
from npvae.core.errors import CheckpointError, DataError
from npvae.core.errors import TooLargeError

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import TINY, fake_mnist, one_error_line, offline  # noqa: E402,F401
from test_data import write_idx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return fake_mnist(tmp_path_factory.mktemp("data"), n_train=300, n_test=60)


@pytest.fixture
def run(data_dir, tmp_path):
    """A finished 1-epoch run folder of ``npvae train``."""
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "1",
                     "--eval-k", "0", "--quiet", "--out", str(out)]) == 0
    return out


def rewrite(path, changes):
    """Rewrite the checkpoint at ``path`` with the arrays in ``changes`` replaced."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {**dict(f), **changes}
    np.savez(path, **arrays)


def resume(run):
    """``npvae train --resume RUN --epochs 2``, with the error raised (--verbose)."""
    return cli.main(["train", "--resume", str(run), "--epochs", "2", "--quiet", "--verbose"])


# --- 3. two runs into one folder ------------------------------------------------------------


def test_a_second_run_into_a_busy_folder_is_refused(data_dir, tmp_path, capsys):
    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from npvae.run import runs
            with runs.folder_lock({str(out)!r}):
                print("held", flush=True)
                sys.stdin.read()
            """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        for extra in ([], ["--overwrite"]):
            assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "1",
                             "--out", str(out), *extra]) == 2
            line = one_error_line(capsys.readouterr().err, "train")
            assert f"another npvae process (pid {holder.pid}) is writing a run in {out}" in line
        assert sorted(p.name for p in out.iterdir()) == [runs.LOCK_FILE]  # nothing written
    finally:
        holder.communicate("")
    assert not out.exists()  # the holder made the folder, wrote nothing, and took it away


def test_the_lock_is_shared_within_a_process_and_released(tmp_path):
    with runs.folder_lock(tmp_path / "r"):
        with runs.folder_lock(tmp_path / "r"):  # npvae train inside npvae's CLI
            (tmp_path / "r" / "file").write_text("x")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["file"]


# --- 4. and 7. what a checkpoint holds is checked on loading ---------------------------------


def test_a_checkpoint_with_nan_weights_is_refused_on_loading(run, capsys):
    rewrite(run / "checkpoint.npz", {"param/out.b": np.full(784, np.nan, np.float32)})
    with pytest.raises(CheckpointError, match="parameter 'out.b' holds NaN or infinite"):
        npvae.load(run)
    for command in (["evaluate", str(run), "--k", "2"], ["sample", str(run)],
                    ["plot", str(run)]):
        assert cli.main(command) == 2
        assert "holds NaN or infinite values" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [
    ("model_rng", {"bit_generator": "PCG64", "state": {}}, "the saved RNG state 'model_rng' is "
                                                           "malformed"),
    ("rng", {"bit_generator": "PCG64"}, "the saved RNG state 'rng' is malformed"),
    ("progress", "drop n_train", "the training progress lacks n_train"),
    ("history", [{"loss": 1.0}], "record 0 of the saved 'history' lacks numbers for epoch"),
    ("history", {"epoch": 1}, "the saved 'history' is a dict"),
])
def test_malformed_metadata_names_the_file_and_the_field(run, field, value, message):
    path = run / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as f:
        saved = json.loads(str(f[field]))
    if value == "drop n_train":
        value = {k: v for k, v in saved.items() if k != "n_train"}
    rewrite(path, {field: np.array(json.dumps(value))})
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        resume(run)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"optimizer/t": np.array(-3)}, "'t' must be a step count"),
    ({"optimizer/m.out.b": np.zeros(3, np.float32)}, "'m.out.b' has shape (3,)"),
    ({"optimizer/velocity.out.b": np.zeros(784, np.float32)}, "unexpected entry "
                                                              "'velocity.out.b'"),
])
def test_a_malformed_optimizer_state_is_named(run, change, message):
    rewrite(run / "checkpoint.npz", change)
    with pytest.raises(CheckpointError, match="the saved optimizer state does not fit") as info:
        resume(run)
    assert message in str(info.value) and str(run) in str(info.value)


def test_plot_draws_what_it_can_from_a_history_without_losses(run, tmp_path):
    rewrite(run / "checkpoint.npz", {"history": np.array(json.dumps([{"epoch": 1}])),
                                     "progress": np.array("null")})  # a model, not a run
    written = {p.name for p in plots.plot_checkpoint(run, tmp_path / "figs")}
    assert "samples.png" in written and "loss_curves.png" not in written


# --- 5. requests too large for memory ---------------------------------------------------------


def test_a_model_too_large_for_memory_is_refused_before_allocating():
    with pytest.raises(TooLargeError, match="784-100000000-20 VAE .* more than this machine"):
        npvae.VAE(784, hidden_dims=(100_000_000,))
    with pytest.raises(MemoryError):  # TooLargeError is a MemoryError, too
        npvae.VAE(784, latent_dim=1_000_000_000)


@pytest.mark.parametrize("argv", [["--hidden", "100000000"], ["--latent-dim", "1000000000"]])
def test_the_cli_refuses_a_model_too_large_in_one_line(data_dir, tmp_path, capsys, argv):
    out = tmp_path / "r"
    assert cli.main(["train", "--data-dir", str(data_dir), *argv, "--out", str(out)]) == 2
    assert "more than this machine's" in one_error_line(capsys.readouterr().err, "train")
    assert not out.exists()


def test_too_many_samples_are_refused(run, capsys):
    assert cli.main(["sample", str(run), "--n", "1000000000"]) == 2
    assert "decoding 1,000,000,000 samples at once" in one_error_line(
        capsys.readouterr().err, "sample")


def test_a_crafted_checkpoint_cannot_make_npvae_allocate_a_huge_model(tmp_path):
    model = npvae.VAE(4, hidden_dims=(3,), latent_dim=2)
    path = npvae.save(tmp_path / "small.npz", model)
    config = {**model.config.to_dict(), "hidden_dims": [100_000_000]}
    rewrite(path, {"config": np.array(json.dumps(config))})
    assert path.stat().st_size < 10_000  # a small file asking for a huge model
    with pytest.raises(CheckpointError, match="the parameters do not match the saved config"):
        npvae.load(path)


def test_the_cli_turns_any_memory_error_into_one_line(run, capsys, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 9 GiB")
    monkeypatch.setattr(npvae.VAE, "sample", no_memory)
    assert cli.main(["sample", str(run)]) == 2
    assert "not enough memory for this request" in one_error_line(capsys.readouterr().err,
                                                                   "sample")


# --- 6. and 10. data files ---------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["link loop", "folder", "broken link"])
def test_an_unusable_file_in_a_named_folder_is_an_error_not_a_fallback(tmp_path, damage):
    named = tmp_path / "named"
    fake_mnist(named, n_train=20, n_test=10)
    other = tmp_path / "system"  # another, good copy, where the search would go next
    fake_mnist(other, n_train=20, n_test=10)
    bad = named / "mnist" / "t10k-images-idx3-ubyte.gz"
    bad.unlink()
    if damage == "link loop":
        bad.symlink_to(bad)
    elif damage == "folder":
        bad.mkdir()
    else:
        bad.symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is not a readable file .* does not fall back"):
        data.load("mnist", "test", data_dir=named)


def test_an_idx_file_with_no_images_is_refused_by_name(tmp_path):
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28)))
    with pytest.raises(DataError, match=r"gives shape \(0, 28, 28\), which holds no examples"):
        data.read_idx(path)


# --- 9., 11., 12. and 13. messages --------------------------------------------------------------


def test_sample_reports_the_file_it_wrote(run, tmp_path, capsys):
    assert cli.main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "NAME")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'NAME.png'}"
    assert (tmp_path / "NAME.png").stat().st_size > 0


@pytest.mark.parametrize("flag", [["--beta", "1e300"], ["--free-bits", "1e300"]])
def test_divergence_from_a_huge_kl_weight_blames_it_not_the_learning_rate(data_dir, tmp_path,
                                                                         capsys, flag):
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, *flag, "--out",
                     str(tmp_path / "r")]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "a KL weight too large" in line and "learning rate" not in line


def test_resume_with_nothing_left_to_train_is_refused(run, capsys):
    for epochs in ([], ["--epochs", "1"]):
        assert cli.main(["train", "--resume", str(run), *epochs]) == 2
        line = one_error_line(capsys.readouterr().err, "train")
        assert "has trained 1 epochs, and --epochs 1 leaves nothing to do" in line


def test_resume_on_other_data_is_refused(run, tmp_path, capsys):
    other = fake_mnist(tmp_path / "other", n_train=300, n_test=60, seed=1)
    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--data-dir",
                     str(other)]) == 2
    assert "was trained on other data than is given now" in one_error_line(
        capsys.readouterr().err, "train")


def test_gradcheck_seed_is_checked_by_its_flag(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["gradcheck", "--seed", "-1"])
    assert info.value.code == 2
    assert "argument --seed: must be an integer ≥ 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("call, error, message", [
    (lambda m, x: m.loss_and_grads(x, beta=float("nan")), ValueError, "beta must be a finite"),
    (lambda m, x: m.loss_and_grads(x, beta=-1.0), ValueError, "beta must be a finite"),
    (lambda m, x: m.loss_and_grads(x, free_bits=float("nan")), ValueError, "free_bits must"),
    (lambda m, x: npvae.VAE(4, hidden_dims=(2.5,)), ValueError, "whole layer sizes"),
    (lambda m, x: m.sample(2.7), ValueError, "n must be a positive integer"),
    (lambda m, x: data.binarize(x * 2, np.random.default_rng(0)), ValueError, "in [0, 1]"),
    (lambda m, x: m.loss_and_grads(x, rng=5), TypeError, "rng must be a numpy Generator"),
    (lambda m, x: npvae.VAE(784, 32), TypeError, "write hidden_dims=(32,)"),
])
def test_api_misuse_gets_a_clear_error(call, error, message):
    model = npvae.VAE(4, hidden_dims=(3,), latent_dim=2, seed=0)
    x = np.full((5, 4), 0.75, np.float32)
    with pytest.raises(error, match=re.escape(message)):
        call(model, x)


# --- stale temporary files ----------------------------------------------------------------------


def test_the_next_save_removes_what_an_interrupted_save_left(tmp_path):
    model = npvae.VAE(4, hidden_dims=(3,), latent_dim=2)
    stale = tmp_path / ".checkpoint.npz.999999999.abcd1234.tmp"  # no such process
    live = tmp_path / f".checkpoint.npz.{os.getpid()}.abcd1234.tmp"  # a save under way
    other = tmp_path / ".other.npz.999999999.abcd1234.tmp"  # another file's
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    checkpoint.save(tmp_path / "checkpoint.npz", model)
    assert not stale.exists() and live.exists() and other.exists()
