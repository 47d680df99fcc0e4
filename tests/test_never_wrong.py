"""Issue 25, "never silently wrong": the cases of its sections 1, 2 and 4 and the command-line
items of "Also", each reproduced.

1. one schema (``checkpoint.check_metadata``) for every field a checkpoint holds, on load and
   on save: every malformed file is refused with its path, the field and what was expected;
2. every file written atomically (``files.atomic_write``): a full disk names the file and the
   checkpoint kept; --overwrite clears the old run's outputs; an interrupted final evaluation
   is finished by --resume;
4. the data file a user named is the one used: --data stored absolute, evaluate and plot check
   the data's fingerprint, truncated and text files named, a missing --data-dir named.
"""

import errno
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.run import checkpoint
from npvae.run import cli
from npvae.run import data
from npvae.run import files
from npvae.run import plots
from npvae.core.errors import CheckpointError, DataError

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import TINY, fake_mnist, one_error_line, offline  # noqa: E402,F401


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return fake_mnist(tmp_path_factory.mktemp("data"), n_train=300, n_test=60)


def train_run(data_dir, out, *flags):
    """``npvae train`` of a tiny 1-epoch run into ``out`` (exit code asserted 0)."""
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "1",
                     "--eval-k", "0", "--quiet", "--out", str(out), *flags]) == 0
    return out


@pytest.fixture
def run(data_dir, tmp_path):
    return train_run(data_dir, tmp_path / "run")


def saved_fields(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: json.loads(str(f[k])) for k in ("history", "progress", "extra", "optimizer")}


def rewrite(path, **fields):
    """Rewrite the checkpoint at ``path`` with the JSON fields given replaced."""
    with np.load(path, allow_pickle=False) as f:
        arrays = dict(f)
    arrays.update({k: np.array(json.dumps(v)) for k, v in fields.items()})
    np.savez(path, **arrays)


# --------------------------------------------------------------------------- 1. one schema


def _history(f):
    return {"history": [{k: v for k, v in f["history"][0].items() if k != "seconds"}]}


def _two_records_at_epoch_0(f):
    return {"history": [f["history"][0], {**f["history"][0], "epoch": 2}],
            "progress": {**f["progress"], "epoch": 0}}


MALFORMED = {  # name: (what to change, given the saved fields; what the message says)
    "optimizer a list": (lambda f: {"optimizer": ["Adam", 0.001]}, "the saved 'optimizer' is"),
    "optimizer class": (lambda f: {"optimizer": {"class": "os.system", "lr": 1}},
                        'expected an object like {"class": "Adam"'),
    "optimizer lr": (lambda f: {"optimizer": {"class": "Adam", "lr": "fast"}},
                     "the saved 'optimizer' is"),
    "args a list": (lambda f: {"extra": {**f["extra"], "args": ["--lr", "1"]}},
                    "the saved training settings ('args') are"),
    "args unknown": (lambda f: {"extra": {**f["extra"], "args": {**f["extra"]["args"],
                                                                  "turbo": True}}},
                     "unknown settings turbo"),
    "args seed text": (lambda f: {"extra": {**f["extra"], "args": {**f["extra"]["args"],
                                                                    "seed": "abc"}}},
                       'saved training setting seed="abc"; expected an integer ≥ 0'),
    "args lr text": (lambda f: {"extra": {**f["extra"], "args": {**f["extra"]["args"],
                                                                  "lr": "0.1"}}},
                     "saved training setting lr=\"0.1\"; expected a number > 0"),
    "args hidden": (lambda f: {"extra": {**f["extra"], "args": {**f["extra"]["args"],
                                                                 "hidden": 16}}},
                    "hidden=16; expected a list of integers"),
    "extra seed text": (lambda f: {"extra": {**f["extra"], "seed": "my seed"}},
                        "entry seed=\"my seed\""),
    "extra a list": (lambda f: {"extra": [1, 2]}, "the saved 'extra' metadata is [1, 2]"),
    "history without seconds": (_history, "record 0 of the saved 'history' lacks seconds"),
    "history out of order": (lambda f: {"history": [{**f["history"][0], "epoch": 3}]},
                             "is for epoch 3; expected epoch 1"),
    "history loss text": (lambda f: {"history": [{**f["history"][0], "loss": "low"}]},
                          "holds loss='low'"),
    "step 10**6": (lambda f: {"progress": {**f["progress"], "step": 10**6}},
                   "at step 1000000 of an epoch of 10 steps; expected a step from 0 to 9"),
    "epoch 0, two records": (_two_records_at_epoch_0,
                             "at epoch 0 (completed), but the history holds 2 epoch records"),
    "negative shuffle seed": (lambda f: {"progress": {**f["progress"], "shuffle_seed": -1}},
                              "shuffle_seed=-1"),
    "sums a list": (lambda f: {"progress": {**f["progress"], "sums": [0, 0]}}, "sums=[0, 0]"),
    "batch size disagrees": (lambda f: {"progress": {**f["progress"], "batch_size": 50,
                                                          "steps": 5}},
                             "batch_size=25 differs from the training progress's "
                             "batch_size=50"),
    "rng seed text": (lambda f: {"rng": {"bit_generator": "PCG64", "state": "seed"}},
                      "the saved RNG state 'rng' is malformed"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_every_malformed_field_is_refused_naming_file_and_field(run, tmp_path, capsys, case):
    change, message = MALFORMED[case]
    path = run / "checkpoint.npz"
    rewrite(path, **change(saved_fields(path)))
    with pytest.raises(CheckpointError, match=r"the file is corrupt") as info:
        npvae.load(run)
    assert str(path) in str(info.value) and message in str(info.value)
    for argv in (["evaluate", str(run), "--k", "2"], ["sample", str(run), "--out",
                                                     str(tmp_path / "s.png")],
                 ["plot", str(run), "--out", str(tmp_path / "figs")],
                 ["train", "--resume", str(run), "--epochs", "2", "--quiet"]):
        assert cli.main(argv) == 2
        line = one_error_line(capsys.readouterr().err, argv[0])
        assert str(path) in line and message in line, argv
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "figs").exists()


def test_the_schema_knows_every_setting_npvae_train_saves():
    assert checkpoint.ARGS.keys() == cli.TRAIN_DEFAULTS.keys()


def test_save_refuses_what_resume_would_call_corrupt(run):
    path = run / "checkpoint.npz"
    before = path.read_bytes()
    model = npvae.load(run)
    opt = npvae.Adam(model.params)
    fields = saved_fields(path)
    for history, progress, message in [
            ([{"loss": 1.0}], None, "record 0 of the saved 'history' lacks numbers for epoch"),
            ([{"epoch": 1, "loss": 1.0}], fields["progress"], "lacks recon, kl, beta, seconds"),
            (fields["history"], {**fields["progress"], "epoch": 5}, "at epoch 5 (completed)")]:
        with pytest.raises(CheckpointError, match="refusing to save") as info:
            checkpoint.save(path, model, opt, history, np.random.default_rng(0),
                            progress=progress)
        assert message in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == before


def test_training_on_a_history_it_could_not_save_is_refused_before_it_starts(tmp_path):
    model = npvae.VAE(20, (8,), 2, seed=0)
    x = np.random.default_rng(0).random((40, 20)).astype(np.float32)
    with pytest.raises(CheckpointError, match="lacks recon, kl, beta, seconds"):
        npvae.train(model, x, epochs=2, history=[{"epoch": 1, "loss": 3.0}],
                    out_dir=tmp_path / "r", verbose=False)
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- 2. atomic files


def failing_on(monkeypatch, name, code=errno.ENOSPC, after=0):
    """Make the ``after``-th and later atomic writes of a file called ``name`` fail with
    OSError(code), once some bytes have reached the temporary file."""
    real, calls = files.os.fsync, []

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if Path(target).name.startswith(f".{name}."):
            calls.append(target)
            if len(calls) > after:
                raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)


def test_a_full_disk_in_training_names_the_file_and_the_checkpoint_kept(tmp_path, monkeypatch):
    x = np.random.default_rng(0).random((40, 20)).astype(np.float32)
    failing_on(monkeypatch, "checkpoint.npz", after=1)  # epoch 1 is saved, epoch 2 is not
    with pytest.raises(files.WriteError) as info:
        npvae.train(npvae.VAE(20, (8,), 2, seed=0), x, epochs=3, out_dir=tmp_path / "r",
                    verbose=False)
    message = str(info.value)
    assert f"cannot write {tmp_path / 'r' / 'checkpoint.npz'}: no space left" in message
    assert "Fix: free some space" in message
    assert "The last good checkpoint" in message and "(at the end of epoch 1), is kept" in message
    assert f"npvae train --resume {tmp_path / 'r'}" in message
    monkeypatch.undo()
    assert len(checkpoint.load_training_state(tmp_path / "r").history) == 1
    names = [p.name for p in (tmp_path / "r").iterdir()]
    assert "checkpoint.npz" in names and not [n for n in names if n.endswith(".tmp")]


def test_a_file_too_large_before_any_checkpoint_says_none_was_written(data_dir, tmp_path,
                                                                     monkeypatch, capsys):
    failing_on(monkeypatch, "checkpoint.npz", code=errno.EFBIG)
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "1",
                     "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert f"cannot write {tmp_path / 'r' / 'checkpoint.npz'}: the file is larger" in line
    assert "ulimit -f" in line and "No checkpoint of this run had been written yet" in line


def test_a_full_disk_never_truncates_a_figure(tmp_path, monkeypatch):
    path = plots.savefig(plots.kl_bars(np.ones(3)), tmp_path / "interpolation.png")
    before = path.read_bytes()
    failing_on(monkeypatch, "interpolation.png")
    with pytest.raises(files.WriteError, match="cannot write .*interpolation.png: no space"):
        plots.savefig(plots.kl_bars(np.arange(3.0)), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["interpolation.png"]


def test_sample_on_a_full_disk_leaves_no_empty_file(run, tmp_path, monkeypatch, capsys):
    failing_on(monkeypatch, "s.png")
    assert cli.main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 2
    assert "no space left on the device; nothing was written" in one_error_line(
        capsys.readouterr().err, "sample")
    assert not (tmp_path / "s.png").exists()


def test_overwrite_clears_the_old_runs_summary_and_history(run, data_dir, monkeypatch):
    assert (run / "summary.json").exists() and (run / "history.json").exists()

    def interrupted(*args, **kwargs):  # Ctrl-C in the new run's first epoch, before a save
        raise KeyboardInterrupt

    monkeypatch.setattr("npvae.run.training.train", interrupted)
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--out", str(run),
                     "--overwrite", "--quiet"]) == 130
    assert not any((run / name).exists() for name in ("summary.json", "history.json",
                                                       "history.csv"))


def test_resume_finishes_an_interrupted_final_evaluation(data_dir, tmp_path, monkeypatch,
                                                        capsys):
    from npvae.study import evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "r"
    monkeypatch.setattr(evaluate, "elbo", interrupted)  # --val 0: only the final evaluation
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--val", "0", "--epochs",
                     "1", "--eval-k", "0", "--quiet", "--out", str(out)]) == 130
    assert f"npvae train --resume {out}" in capsys.readouterr().err
    assert not (out / "summary.json").exists()
    monkeypatch.undo()
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0
    assert "final evaluation did not finish (no summary.json); evaluating it now" in \
        capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1


# --------------------------------------------------------------------------- 4. the file named


def own_data(path, seed=0, n=60):
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.random((n, 784)).astype(np.float32), y=rng.integers(0, 10, n))
    return path


def test_data_is_stored_absolute_and_a_changed_file_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    own_data(Path("mine.npz"))
    assert cli.main(["train", "--data", "mine.npz", *TINY, "--val", "10", "--epochs", "1",
                     "--eval-k", "0", "--quiet", "--out", "run"]) == 0
    run = tmp_path / "a" / "run"
    assert checkpoint.load_with_metadata(run)[1]["args"]["source"] == str(tmp_path / "a" /
                                                                      "mine.npz")
    monkeypatch.chdir(tmp_path)  # elsewhere, with a file of the same name here
    own_data(Path("mine.npz"), seed=1)
    assert cli.main(["evaluate", str(run), "--k", "2"]) == 0
    assert str(tmp_path / "a" / "mine.npz") in capsys.readouterr().out
    own_data(tmp_path / "a" / "mine.npz", seed=2)  # the run's own file, edited
    for argv in (["evaluate", str(run), "--k", "2"],
                 ["plot", str(run), "--out", str(tmp_path / "figs")]):
        assert cli.main(argv) == 2
        line = one_error_line(capsys.readouterr().err, argv[0])
        assert f"{tmp_path / 'a' / 'mine.npz'} is not the data" in line
        assert "was edited or replaced since" in line


def test_evaluate_refuses_another_copy_of_the_data_set(run, tmp_path, capsys):
    other = fake_mnist(tmp_path / "other", n_train=300, n_test=60, seed=1)
    assert cli.main(["evaluate", str(run), "--k", "2", "--data-dir", str(other)]) == 2
    assert "is not the data" in one_error_line(capsys.readouterr().err, "evaluate")


@pytest.mark.parametrize("content, message", [
    ("truncated", "is truncated or corrupt"),
    ("text", "is not a NumPy file (.npy or .npz): it starts with b'0.1,0.'"),
])
def test_a_truncated_or_text_data_file_is_a_data_error(tmp_path, capsys, content, message):
    path = tmp_path / "mine.npz"
    if content == "truncated":
        own_data(path)
        path.write_bytes(path.read_bytes()[:5000])
    else:
        path.write_text("0.1,0.2,0.3\n" * 20)
    with pytest.raises(DataError) as info:
        data.load_array_file(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "allow_pickle" not in str(info.value)
    assert cli.main(["train", "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    assert message in one_error_line(capsys.readouterr().err, "train")


def test_a_nonexistent_data_dir_is_an_error_naming_it(run, tmp_path, capsys):
    nowhere = str(tmp_path / "nowhere")
    for argv in (["train", "--data-dir", nowhere, *TINY, "--out", str(tmp_path / "r")],
                 ["evaluate", str(run), "--data-dir", nowhere],
                 ["plot", str(run), "--data-dir", nowhere, "--out", str(tmp_path / "f")]):
        assert cli.main(argv) == 2
        assert f"--data-dir {nowhere}: no such folder" in one_error_line(
            capsys.readouterr().err, argv[0])
    assert not (tmp_path / "r").exists() and not (tmp_path / "f").exists()


# --------------------------------------------------------------------------- also


def test_sample_into_a_folder(run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sample", str(run), "--out", "o/"]) == 0
    assert (tmp_path / "o" / "samples.png").is_file() and not (tmp_path / "o.png").exists()
    assert cli.main(["sample", str(run), "--out", "o"]) == 0  # an existing folder
    assert sorted(os.listdir(tmp_path / "o")) == ["samples.png"]


def test_empty_or_file_outputs_are_refused(run, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--out", ""]) == 2
    assert "--out is empty" in one_error_line(capsys.readouterr().err, "train")
    assert not (tmp_path / "runs").exists()
    (tmp_path / "f.png").write_bytes(b"a figure")
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "f.png")]) == 2
    assert "is a file; npvae plot writes several PNGs into a folder" in one_error_line(
        capsys.readouterr().err, "plot")
    assert (tmp_path / "f.png").read_bytes() == b"a figure"


def test_resume_with_a_new_learning_rate_is_recorded(run, data_dir):
    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--lr", "0.0005",
                     "--quiet"]) == 0
    state = checkpoint.load_training_state(run)
    assert [r["lr"] for r in state.history] == [0.001, 0.0005]
    assert state.extra["args"]["lr"] == 0.0005
    assert json.loads((run / "history.json").read_text())[1]["lr"] == 0.0005


def test_a_changed_data_file_on_resume_names_the_data_flag(tmp_path, capsys):
    path = own_data(tmp_path / "mine.npz")
    assert cli.main(["train", "--data", str(path), *TINY, "--val", "10", "--epochs", "1",
                     "--eval-k", "0", "--quiet", "--out", str(tmp_path / "r")]) == 0
    other = own_data(tmp_path / "other.npz", seed=1)
    assert cli.main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2",
                     "--data", str(other)]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert f"--data {other} (saved: {path}) differ" in line and "--source" not in line
