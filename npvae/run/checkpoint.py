"""Checkpoints: one ``.npz`` file with everything needed to sample, evaluate or resume training.

    npvae.run.checkpoint.save("runs/x/checkpoint.npz", model, optimizer, history, rng)
    model = npvae.load("runs/x/checkpoint.npz")           # the model alone, ready to use
    state = load_training_state(path, model)               # everything, to resume training

Layout of the file (plain arrays only; it is read with ``allow_pickle=False``):

    format_version    ()  int64    FORMAT_VERSION; a newer one is refused with a clear error
    model_class       ()  unicode  "VAE", "CVAE" or "Autoencoder"
    config            ()  unicode  the model's config (VAEConfig, CVAEConfig) as JSON text
    param/<name>      the parameters, e.g. "param/encoder.0.W" (H, D)... as in ``model.params``
    model_rng         ()  unicode  model.rng.bit_generator.state as JSON
    optimizer         ()  unicode  {"class": "Adam", "lr": 0.001} as JSON (if an optimizer is saved)
    optimizer/<key>   the arrays of ``optimizer.state_dict()``, e.g. "optimizer/t",
                      "optimizer/m.out.W"
    rng               ()  unicode  the training Generator's bit_generator.state as JSON, or "null"
    history           ()  unicode  the per-epoch records as JSON
    progress          ()  unicode  where training stands (epoch, step within it) as JSON, or "null"
    extra             ()  unicode  free JSON metadata (the command line stores its flags here)

The file is written atomically: to a temporary file in the same folder, flushed and fsynced,
then moved over the old one with ``os.replace``. A write that fails, or a process killed in
the middle of it, leaves the previous checkpoint intact (a ``kill -9`` may leave a hidden
``.checkpoint.npz.<pid>.<hex>.tmp`` file behind, which is safe to delete).
"""

import dataclasses
import glob
import json
import os
import secrets
from pathlib import Path

import numpy as np

from ..models.autoencoder import Autoencoder
from ..models.cvae import CVAE, CVAEConfig
from ..models.hvae import HVAE, HVAEConfig
from ..core.errors import CheckpointError
from ..core.vae import VAE, VAEConfig

FORMAT_VERSION = 1
FILENAME = "checkpoint.npz"  # the name used inside a run folder; ``resolve`` adds it to folders

# The model classes a checkpoint may hold, by name, with their config classes.
MODEL_CLASSES = {"VAE": (VAE, VAEConfig), "CVAE": (CVAE, CVAEConfig),
                 "Autoencoder": (Autoencoder, VAEConfig), "HVAE": (HVAE, HVAEConfig)}

# The bit generators a saved RNG state may name (rebuilt by name, so the set is closed).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


@dataclasses.dataclass
class TrainingState:
    """Everything a checkpoint holds, as loaded by ``load_training_state``.

    model : VAE with the saved parameters (and model.rng restored).
    optimizer_class : str or None, e.g. "Adam".
    optimizer_state : dict of arrays for ``optimizer.load_state_dict``, or None.
    rng_state : dict, the training Generator's ``bit_generator.state``, or None.
    history : list of per-epoch dicts.
    progress : dict or None, where training stood (see ``npvae.train``).
    extra : dict of metadata.
    path : Path of the file.
    """

    model: VAE
    optimizer_class: object
    optimizer_state: object
    rng_state: object
    history: list
    progress: object
    extra: dict
    path: Path


# --------------------------------------------------------------------------- writing


def save(path, model, optimizer=None, history=None, rng=None, extra=None, progress=None):
    """Write a checkpoint of ``model`` (and what resuming needs) to ``path``, atomically.

    Parameters
    ----------
    path : str or Path of the ``.npz`` file; its folder is created if needed.
    model : VAE. Non-finite parameters are refused (CheckpointError), so a diverged run never
        overwrites a good checkpoint.
    optimizer : Adam, SGD or None; its ``state_dict()`` (step count included) is saved.
    history : list of dicts, the per-epoch records, or None.
    rng : Generator or None, the training generator, whose state is saved.
    extra : JSON-serialisable dict of metadata, or None.
    progress : JSON-serialisable dict, the training loop's position, or None.

    Returns
    -------
    Path of the file written.
    """
    path = Path(path)
    for name, p in model.params.items():
        if not np.isfinite(p).all():
            raise CheckpointError(f"refusing to save {path}: parameter {name!r} holds NaN or "
                                  f"infinite values. The previous checkpoint is kept.")
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "model_class": np.array(type(model).__name__),
        "config": _json_array(model.config.to_dict()),
        "model_rng": _json_array(model.rng.bit_generator.state),
        "rng": _json_array(None if rng is None else rng.bit_generator.state),
        "history": _json_array(list(history or [])),
        "progress": _json_array(progress),
        "extra": _json_array(dict(extra or {})),
    }
    arrays.update({f"param/{k}": p for k, p in model.params.items()})
    if optimizer is not None:
        arrays["optimizer"] = _json_array({"class": type(optimizer).__name__,
                                           "lr": float(optimizer.lr)})
        arrays.update({f"optimizer/{k}": np.asarray(v)
                       for k, v in optimizer.state_dict().items()})
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def save_json(path, obj):
    """Write ``obj`` as indented JSON to ``path``, atomically (as ``save`` does)."""
    text = json.dumps(obj, indent=1, default=_to_builtin) + "\n"
    return atomic_write(Path(path), lambda f: f.write(text.encode()))


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to ``path``, then move it into place.

    The data is flushed and fsynced before ``os.replace``, which swaps the file in one step. On
    any failure (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)  # make the rename itself durable
    return path


def _remove_stale_tmp(path):
    """Delete the temporary files that an interrupted save of ``path`` left (``kill -9`` in
    mid-write): those named ``.<name>.<pid>.<hex>.tmp`` whose process no longer runs."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".")[0]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid):
    """True if a process with this pid exists (or may: one we cannot signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _to_builtin(obj):
    """JSON fallback: numpy arrays and scalars (e.g. in an MT19937 state) to Python values."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint's JSON metadata")


def _json_array(obj):
    """A 0-d unicode array holding ``obj`` as JSON text."""
    return np.array(json.dumps(obj, default=_to_builtin))


# --------------------------------------------------------------------------- reading


def resolve(path):
    """The checkpoint file for ``path``: the path itself, or ``path/checkpoint.npz`` for a
    run folder. A missing file raises CheckpointError."""
    path = Path(path)
    folder = path.is_dir()
    if folder:
        path = path / FILENAME
    if not path.is_file():
        hint = f"the folder holds no {FILENAME}" if folder else "no such file"
        raise CheckpointError(f"no checkpoint at {path} ({hint}); pass the .npz file written by "
                              f"training, or the run folder (--out) that holds {FILENAME}.")
    return path


def read_arrays(path):
    """Every array of the checkpoint at ``path``, read without pickle: (resolved path, dict)."""
    path = resolve(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError as exc:  # neither .npz nor .npy: numpy took it for a pickle, and refused
        raise CheckpointError(f"{path} is not an npvae checkpoint: it is neither an .npz "
                              f"archive nor an .npy array.") from exc
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt file
        raise CheckpointError(f"cannot read {path}: the file is truncated or corrupt "
                              f"({type(exc).__name__}: {exc}).") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} is a single .npy array, not an npvae checkpoint (.npz).")
    arrays = {}
    try:
        with npz:
            for key in npz.files:
                arrays[key] = npz[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise CheckpointError(f"cannot read {path}: array {key!r} is corrupt ({exc}).") from exc
        raise CheckpointError(
            f"refusing to load {path}: array {key!r} is a Python object array, which only pickle "
            f"can read, and unpickling can run arbitrary code. npvae checkpoints hold plain "
            f"numeric arrays only; this file was not written by npvae.") from exc
    except Exception as exc:  # noqa: BLE001 - bad CRC, truncated member, bad zlib stream...
        raise CheckpointError(f"cannot read {path}: the file is truncated or corrupt "
                              f"({type(exc).__name__}: {exc}).") from exc
    _check_format(path, arrays)
    return path, arrays


def _check_format(path, arrays):
    if "format_version" not in arrays or "config" not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not an npvae checkpoint (it has no "
                              f"format_version or config).")
    version = arrays["format_version"]
    if version.shape != () or not np.issubdtype(version.dtype, np.integer):
        raise CheckpointError(f"{path}: format_version is not an integer; the file is corrupt.")
    if int(version) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written in checkpoint format {int(version)} by a newer npvae; this "
            f"npvae reads formats up to {FORMAT_VERSION}. Upgrade npvae to load it.")


def _json(path, arrays, key, default=None):
    """Parse the JSON text stored under ``key`` (``default`` if the key is absent)."""
    if key not in arrays:
        return default
    a = arrays[key]
    if a.shape != () or a.dtype.kind != "U":
        raise CheckpointError(f"{path}: {key!r} should be JSON text; the file is corrupt.")
    try:
        return json.loads(str(a))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: {key!r} is not valid JSON ({exc}); the file is "
                              f"corrupt.") from exc


def _config(path, arrays):
    """(model class, config) saved in the file."""
    name = str(arrays["model_class"]) if "model_class" in arrays else "VAE"
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"{path} holds a model of unknown class {name!r}; this npvae "
                              f"knows {', '.join(MODEL_CLASSES)}.")
    cls, config_cls = MODEL_CLASSES[name]
    try:
        return cls, config_cls(**_json(path, arrays, "config"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the saved model config is invalid ({exc}).") from exc


def check_config(path, saved, model):
    """Raise CheckpointError naming every field where ``model``'s config differs from ``saved``."""
    ours, theirs = model.config.to_dict(), saved.to_dict()
    diffs = [f"{k}={theirs.get(k)!r} (this model: {ours.get(k)!r})"
             for k in sorted(ours.keys() | theirs.keys()) if ours.get(k) != theirs.get(k)]
    if type(model.config) is not type(saved):
        diffs.insert(0, f"a {type(saved).__name__} (this model: {type(model.config).__name__})")
    if diffs:
        raise CheckpointError(
            f"{path} holds a different model: {', '.join(diffs)}. Build the model with the "
            f"checkpoint's settings (npvae.load gives it), or start a new run.")


def _copy_params(path, arrays, model):
    """Copy the saved parameters into ``model.params`` in place (the optimizer keeps its refs)."""
    saved = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    if saved.keys() != model.params.keys():
        missing = sorted(model.params.keys() - saved.keys())
        unexpected = sorted(saved.keys() - model.params.keys())
        raise CheckpointError(f"{path}: the parameters do not match the config (missing "
                              f"{missing}, unexpected {unexpected}); the file is corrupt.")
    for k, p in model.params.items():
        v = saved[k]
        if v.shape != p.shape or v.dtype != p.dtype:
            raise CheckpointError(f"{path}: parameter {k!r} is {v.dtype} {v.shape}, but the "
                                  f"config needs {p.dtype} {p.shape}; the file is corrupt.")
        if not np.isfinite(v).all():
            raise CheckpointError(f"{path}: parameter {k!r} holds NaN or infinite values, so "
                                  f"the model would compute nothing but NaN; the file is "
                                  f"corrupt (npvae never saves such a model). Use an earlier "
                                  f"checkpoint or train afresh.")
        p[...] = v


def generator(state, path="the checkpoint", field="rng"):
    """A new Generator whose bit generator has the saved ``state`` (a bit_generator.state dict);
    a CheckpointError naming ``path`` and ``field`` if the state is malformed."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise CheckpointError(f"{path}: unknown bit generator {name!r} in the saved RNG state "
                              f"{field!r}; expected one of {', '.join(BIT_GENERATORS)}.")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{path}: the saved RNG state {field!r} is malformed "
                              f"({type(exc).__name__}: {exc}); the file is corrupt.") from None
    return np.random.Generator(bit_generator)


def set_state(rng, state, path="the checkpoint"):
    """Put the saved ``state`` into the existing Generator ``rng`` (same bit generator kind)."""
    saved = generator(state, path, "rng")  # checks the state
    kind = type(rng.bit_generator).__name__
    if state.get("bit_generator") != kind:
        raise CheckpointError(f"{path}: its RNG is a {state.get('bit_generator')}, but the "
                              f"generator passed in is a {kind}; pass a matching Generator.")
    rng.bit_generator.state = saved.bit_generator.state


def _check_shapes(path, arrays, cls, config):
    """The saved parameters must be those the config describes, checked before the model is
    built, so that a config asking for a huge model cannot make npvae allocate it."""
    expected = {}
    for name, fan_in, fan_out, _ in cls.shapes_of(config):
        expected[f"{name}.W"], expected[f"{name}.b"] = (fan_in, fan_out), (fan_out,)
    saved = {k[len("param/"):]: v.shape for k, v in arrays.items() if k.startswith("param/")}
    if saved != expected:
        wrong = sorted(k for k in expected.keys() | saved.keys()
                       if expected.get(k) != saved.get(k))
        raise CheckpointError(f"{path}: the parameters do not match the saved config (for "
                              f"{', '.join(wrong[:4])}: the config needs "
                              f"{[expected.get(k) for k in wrong[:4]]}, the file holds "
                              f"{[saved.get(k) for k in wrong[:4]]}); the file is corrupt.")


def _restore(path, arrays, model):
    """Build the model (or check and fill the given one) from the arrays; restore model.rng."""
    cls, config = _config(path, arrays)
    _check_shapes(path, arrays, cls, config)
    if model is None:
        model = cls.from_config(config)
    else:
        check_config(path, config, model)
    _copy_params(path, arrays, model)
    model_rng = _json(path, arrays, "model_rng")
    if model_rng is not None:
        # Into the model's own Generator, in place: a training loop may hold it as its rng.
        saved = generator(model_rng, path, "model_rng")
        model.rng.bit_generator.state = saved.bit_generator.state
    return model


HISTORY_KEYS = ("epoch",)  # what every epoch's record holds, at least


def _history(path, history):
    """The saved history, checked: a list of records, each a dict with numbers under
    HISTORY_KEYS; else a CheckpointError naming the file, the record and the field."""
    if not isinstance(history, list):
        raise CheckpointError(f"{path}: the saved 'history' is a {type(history).__name__}, not a "
                              f"list of epoch records; the file is corrupt.")
    for i, record in enumerate(history):
        missing = [key for key in HISTORY_KEYS if not (
            isinstance(record, dict) and isinstance(record.get(key), (int, float)))]
        if missing:
            raise CheckpointError(f"{path}: record {i} of the saved 'history' lacks numbers "
                                  f"for {', '.join(missing)}; the file is corrupt.")
    return history


def load(path):
    """The model saved at ``path`` (a ``.npz`` file, or a run folder holding checkpoint.npz).

    Its parameters, config and ``model.rng`` are as saved. Raises CheckpointError for a
    missing, truncated, corrupt, unsafe (pickled) or newer-format file.
    """
    path, arrays = read_arrays(path)
    return _restore(path, arrays, None)


def load_with_metadata(path):
    """(model, meta): the model, and a dict of the file's metadata: the ``extra`` entries, plus
    "history", "progress", "format_version" and "path"."""
    state = load_training_state(path)
    meta = dict(state.extra)
    meta.update(history=state.history, progress=state.progress, path=state.path,
                format_version=FORMAT_VERSION)
    return state.model, meta


def load_training_state(path, model=None):
    """Everything in the checkpoint at ``path``, for resuming training: a TrainingState.

    With ``model`` given, its config must equal the saved one (else CheckpointError naming the
    differences) and the saved parameters are copied into it, in place.
    """
    path, arrays = read_arrays(path)
    model = _restore(path, arrays, model)
    optimizer = _json(path, arrays, "optimizer")
    optimizer_state = None
    if optimizer is not None:
        optimizer_state = {k[len("optimizer/"):]: v for k, v in arrays.items()
                           if k.startswith("optimizer/")}
    return TrainingState(
        model=model,
        optimizer_class=None if optimizer is None else optimizer.get("class"),
        optimizer_state=optimizer_state,
        rng_state=_json(path, arrays, "rng"),
        history=_history(path, _json(path, arrays, "history", [])),
        progress=_json(path, arrays, "progress"),
        extra=_json(path, arrays, "extra", {}),
        path=path,
    )
