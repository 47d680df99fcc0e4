"""Tests for npvae.run.checkpoint: round trips, atomic writes, and every kind of bad file refused."""

import json
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import npvae
from npvae.run import checkpoint
from npvae.run import files as files_module
from npvae.models.cvae import CVAE
from npvae.core.errors import CheckpointError

D = 20


def trained(seed=0, steps=3):
    """A tiny model and its Adam after a few steps (so the optimizer state is not all zeros)."""
    model = npvae.VAE(D, (16,), 2, seed=seed)
    opt = npvae.Adam(model.params, lr=1e-2)
    x = np.random.default_rng(seed).random((32, D)).astype(np.float32)
    for _ in range(steps):
        opt.step(model.loss_and_grads(x)[1])
    return model, opt


def saved(tmp_path, name="checkpoint.npz"):
    model, opt = trained()
    path = checkpoint.save(tmp_path / name, model, opt, [{"epoch": 1, "loss": 1.25}],
                           np.random.default_rng(5))
    return path, model


def files(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- round trips


def test_round_trip_restores_everything(tmp_path):
    model, opt = trained()
    rng = np.random.default_rng(42)
    rng.random(3)  # a state that is not the seed's
    history = [{"epoch": 1, "loss": 101.5, "val_loss": 99.25}, {"epoch": 2, "loss": 97.0}]
    extra = {"dataset": "mnist", "args": {"hidden": [16], "lr": 0.01}}
    progress = {"epoch": 2, "step": 0}
    path = checkpoint.save(tmp_path / "run" / "checkpoint.npz", model, opt, history, rng,
                           extra, progress)
    assert files(path.parent) == ["checkpoint.npz"]

    state = checkpoint.load_training_state(path)
    loaded = state.model
    assert loaded.config == model.config
    for name, p in model.params.items():
        assert loaded.params[name].dtype == p.dtype == np.float32
        assert np.array_equal(loaded.params[name], p)
    assert state.optimizer_class == "Adam"
    expected = opt.state_dict()
    assert state.optimizer_state.keys() == expected.keys()
    for key, value in expected.items():
        assert np.array_equal(state.optimizer_state[key], value), key
    assert int(state.optimizer_state["t"]) == 3
    assert state.rng_state == rng.bit_generator.state
    assert np.array_equal(checkpoint.generator(state.rng_state).random(5), rng.random(5))
    assert loaded.rng.bit_generator.state == model.rng.bit_generator.state
    assert (state.history, state.extra, state.progress) == (history, extra, progress)

    opt2 = npvae.Adam(loaded.params, lr=1e-2)  # the state drops into a fresh optimizer
    opt2.load_state_dict(state.optimizer_state)
    assert opt2.t == 3


def test_model_save_and_npvae_load_with_a_run_folder(tmp_path):
    model, opt = trained()
    npvae.save(tmp_path / "checkpoint.npz", model, optimizer=opt, history=[{"epoch": 1}])
    loaded = npvae.load(tmp_path)  # the folder is enough
    assert loaded.config == model.config
    for name, p in model.params.items():
        assert np.array_equal(loaded.params[name], p)
    z = np.zeros((2, 2), dtype=np.float32)
    assert np.array_equal(loaded.decode(z), model.decode(z))
    _, meta = checkpoint.load_with_metadata(tmp_path)
    assert meta["history"] == [{"epoch": 1}]


def test_a_cvae_round_trips_as_a_cvae(tmp_path):
    model = CVAE(D, 3, (8,), 2, seed=0)
    checkpoint.save(tmp_path / "c.npz", model)
    loaded = npvae.load(tmp_path / "c.npz")
    assert isinstance(loaded, CVAE) and loaded.config == model.config
    with pytest.raises(CheckpointError, match="different model: a CVAEConfig"):
        checkpoint.load_training_state(tmp_path / "c.npz", npvae.VAE(D, (8,), 2))


def test_the_file_holds_plain_arrays_and_json(tmp_path):
    path, model = saved(tmp_path)
    with np.load(path, allow_pickle=False) as f:
        assert int(f["format_version"]) == checkpoint.FORMAT_VERSION
        assert json.loads(str(f["config"])) == model.config.to_dict()
        assert f["config"].shape == () and f["config"].dtype.kind == "U"
        assert np.array_equal(f["param/encoder.0.W"], model.params["encoder.0.W"])
        assert json.loads(str(f["optimizer"])) == {"class": "Adam", "lr": 0.01}
        assert "optimizer/t" in f.files and "optimizer/m.encoder.0.W" in f.files
        assert json.loads(str(f["history"])) == [{"epoch": 1, "loss": 1.25}]


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("fail_in", ["savez", "replace"])
def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch,
                                                                        fail_in):
    path, old = saved(tmp_path)
    before = path.read_bytes()
    newer, _ = trained(seed=1)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")  # some bytes reach the temporary file
        raise OSError(28, "No space left on device")

    def broken_replace(src, dst):
        raise OSError(5, "Input/output error")

    if fail_in == "savez":
        monkeypatch.setattr(np, "savez", broken_savez)
    else:
        monkeypatch.setattr(files_module.os, "replace", broken_replace)
    with pytest.raises(OSError):
        checkpoint.save(path, newer)
    monkeypatch.undo()
    assert files(tmp_path) == ["checkpoint.npz"]  # no temporary file left behind
    assert path.read_bytes() == before
    assert np.array_equal(npvae.load(path).params["out.W"], old.params["out.W"])


def test_kill_9_in_the_middle_of_a_write_keeps_the_old_checkpoint(tmp_path):
    path, old = saved(tmp_path)
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        import npvae
        from npvae.run import checkpoint

        def slow_savez(f, **arrays):
            f.write(b"PK\\x03\\x04 the first bytes of a new checkpoint")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)  # killed here, in the middle of the write

        np.savez = slow_savez
        checkpoint.save({str(path)!r}, npvae.VAE({D}, (16,), 2, seed=9))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    assert path.read_bytes() == before
    assert np.array_equal(npvae.load(path).params["out.W"], old.params["out.W"])
    leftovers = [p for p in files(tmp_path) if p != "checkpoint.npz"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".checkpoint.npz.")  # hidden, .tmp
    assert leftovers[0].endswith(".tmp")


def test_non_finite_parameters_are_never_saved(tmp_path):
    path, _ = saved(tmp_path)
    before = path.read_bytes()
    bad, _ = trained()
    bad.params["mu.W"][0, 0] = np.nan
    with pytest.raises(CheckpointError, match="parameter 'mu.W' holds NaN"):
        checkpoint.save(path, bad)
    assert path.read_bytes() == before and files(tmp_path) == ["checkpoint.npz"]


# --------------------------------------------------------------------------- bad files


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nope\.npz .no such file"):
        npvae.load(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="the folder holds no checkpoint.npz"):
        npvae.load(tmp_path)


def test_an_object_array_is_refused_without_unpickling(tmp_path):
    path, _ = saved(tmp_path)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["param/out.W"] = np.array([{"__reduce__": "os.system"}], dtype=object)
    np.savez(path, **arrays)  # saving object arrays needs pickle; loading is what we refuse
    with pytest.raises(CheckpointError, match=r"refusing to load .*'param/out.W' is a Python "
                                              r"object array, which only pickle can read"):
        npvae.load(path)


def test_a_newer_format_version_is_refused(tmp_path):
    path, _ = saved(tmp_path)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["format_version"] = np.array(checkpoint.FORMAT_VERSION + 1)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"written in checkpoint format 2 by a newer npvae; "
                                              r"this npvae reads formats up to 1"):
        npvae.load(path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_truncated_or_corrupt_files_are_refused_with_their_name(tmp_path, damage):
    path, _ = saved(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # a byte in the middle of the parameters: the zip CRC catches it
        data = data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:]
    elif damage == "garbage":
        data = b"this is not a checkpoint at all\n" * 10
    else:
        data = b""
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"cannot read .*checkpoint\.npz: the file is "
                                              r"truncated or corrupt|checkpoint\.npz is not an "
                                              r"npvae checkpoint") as excinfo:
        npvae.load(path)
    assert "allow_pickle" not in str(excinfo.value)  # never advise loading a file unsafely


def test_a_flipped_byte_is_caught_by_the_crc(tmp_path):
    path, model = saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("param/out.W.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 200] ^= 0x01  # inside the member's data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"truncated or corrupt \(BadZipFile: Bad CRC-32"):
        npvae.load(path)


def test_other_npy_and_npz_files_are_refused(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="single .npy array, not an npvae checkpoint"):
        npvae.load(tmp_path / "array.npy")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="not an npvae checkpoint .it has no format_version"):
        npvae.load(tmp_path / "other.npz")


def test_a_different_config_is_refused_when_loading_into_a_model(tmp_path):
    path, _ = saved(tmp_path)
    other = npvae.VAE(D, (16,), 3, seed=0)
    before = {k: p.copy() for k, p in other.params.items()}
    with pytest.raises(CheckpointError, match=r"holds a different model: latent_dim=2 "
                                              r"\(this model: 3\)"):
        checkpoint.load_training_state(path, other)
    for name, p in other.params.items():
        assert np.array_equal(p, before[name])  # untouched


def test_a_saved_rng_of_an_unknown_kind_is_refused():
    with pytest.raises(CheckpointError, match="unknown bit generator 'os.system'"):
        checkpoint.generator({"bit_generator": "os.system", "state": {}})
    mt = np.random.Generator(np.random.MT19937(3))
    state = json.loads(json.dumps(mt.bit_generator.state, default=files_module.to_builtin))
    assert np.array_equal(checkpoint.generator(state).random(3), mt.random(3))


def test_save_is_quick_enough_to_run_every_epoch(tmp_path):
    """Not a benchmark: a guard that save does not, say, compress 60k examples by mistake."""
    model = npvae.VAE(784, (400,), 20, seed=0)
    start = time.perf_counter()
    checkpoint.save(tmp_path / "checkpoint.npz", model, npvae.Adam(model.params))
    assert time.perf_counter() - start < 5
    assert (tmp_path / "checkpoint.npz").stat().st_size < 3 * 4 * 700_000  # params + m + v
