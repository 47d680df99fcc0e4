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

The file is written atomically (``files.atomic_write``, as every file npvae writes): to a
temporary file in the same folder, flushed and fsynced, then moved over the old one with
``os.replace``. A write that fails, or a process killed in the middle of it, leaves the previous
checkpoint intact (a ``kill -9`` may leave a hidden ``.checkpoint.npz.<pid>.<hex>.tmp`` file
behind, which the next save removes).

One schema, ``check_metadata``, covers every JSON field above: types, ranges (a step within
its epoch, a seed ≥ 0), the known keys of ``extra`` and of the saved training settings
(``ARGS``), and the fields against each other (the progress's epoch is the history's length,
its batch size the saved setting's). ``save`` applies it before writing, so npvae never
writes a checkpoint it would refuse to read; every load applies it after reading, so a
damaged or edited file is refused with a CheckpointError naming the file, the field and what
was expected.
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from ..models.autoencoder import Autoencoder
from ..models.classifier import Classifier, ClassifierConfig
from ..models.m2 import SemiSupervisedVAE, SemiSupervisedVAEConfig
from ..models.cvae import CVAE, CVAEConfig
from ..models.fullcov import FullCovarianceVAE
from ..models.hvae import HVAE, HVAEConfig
from ..core.errors import CheckpointError
from ..core.layers import ACTIVATIONS
from ..core.vae import LIKELIHOODS, OBJECTIVES, VAE, VAEConfig
from . import files
from .files import atomic_write  # noqa: F401  (checkpoint.atomic_write, as before)

FORMAT_VERSION = 1
FILENAME = "checkpoint.npz"  # the name used inside a run folder; ``resolve`` adds it to folders

# The model classes a checkpoint may hold, by name, with their config classes.
MODEL_CLASSES = {"VAE": (VAE, VAEConfig), "CVAE": (CVAE, CVAEConfig),
                 "Autoencoder": (Autoencoder, VAEConfig), "HVAE": (HVAE, HVAEConfig),
                 "FullCovarianceVAE": (FullCovarianceVAE, VAEConfig),
                 "Classifier": (Classifier, ClassifierConfig),
                 "SemiSupervisedVAE": (SemiSupervisedVAE, SemiSupervisedVAEConfig)}

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
    meta = {"optimizer": None if optimizer is None else {"class": type(optimizer).__name__,
                                                         "lr": float(optimizer.lr)},
            "model_rng": model.rng.bit_generator.state,
            "rng": None if rng is None else rng.bit_generator.state,
            "history": list(history or []), "progress": progress, "extra": dict(extra or {})}
    texts = {key: json.dumps(value, default=files.to_builtin) for key, value in meta.items()}
    try:  # what is written is what will be read: the JSON text, checked by the one schema
        check_metadata({key: json.loads(text) for key, text in texts.items()})
    except _Bad as bad:
        raise CheckpointError(f"refusing to save {path}: {bad}. Nothing was written (a previous "
                              f"checkpoint there is kept).") from None
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "model_class": np.array(type(model).__name__),
        "config": _json_array(model.config.to_dict()),
        **{key: np.array(text) for key, text in texts.items() if key != "optimizer"},
    }
    arrays.update({f"param/{k}": p for k, p in model.params.items()})
    if optimizer is not None:
        arrays["optimizer"] = np.array(texts["optimizer"])
        arrays.update({f"optimizer/{k}": np.asarray(v)
                       for k, v in optimizer.state_dict().items()})
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def save_json(path, obj):
    """Write ``obj`` as indented JSON to ``path``, atomically (``files.write_json``)."""
    return files.write_json(path, obj)


def _json_array(obj):
    """A 0-d unicode array holding ``obj`` as JSON text."""
    return np.array(json.dumps(obj, default=files.to_builtin))


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
    try:
        return _generator(state, field)
    except _Bad as bad:
        raise CheckpointError(f"{path}: {bad}; the file is corrupt.") from None


def _generator(state, field):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise _Bad(f"unknown bit generator {name!r} in the saved RNG state {field!r}; expected "
                   f"one of {', '.join(BIT_GENERATORS)}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _Bad(f"the saved RNG state {field!r} is malformed ({type(exc).__name__}: "
                   f"{exc})") from None
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


def load(path):
    """The model saved at ``path`` (a ``.npz`` file, or a run folder holding checkpoint.npz).

    Its parameters, config and ``model.rng`` are as saved. Raises CheckpointError for a
    missing, truncated, corrupt, unsafe (pickled) or newer-format file.
    """
    return load_training_state(path).model


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
    meta = {key: _json(path, arrays, key, default)
            for key, default in (("optimizer", None), ("model_rng", None), ("rng", None),
                                 ("history", []), ("progress", None), ("extra", {}))}
    try:
        check_metadata(meta)
    except _Bad as bad:
        raise CheckpointError(f"{path}: {bad}; the file is corrupt (or was edited). Use an "
                              f"earlier checkpoint, or train afresh.") from None
    model = _restore(path, arrays, model)
    optimizer = meta["optimizer"]
    optimizer_state = None
    if optimizer is not None:
        optimizer_state = {k[len("optimizer/"):]: v for k, v in arrays.items()
                           if k.startswith("optimizer/")}
    return TrainingState(
        model=model,
        optimizer_class=None if optimizer is None else optimizer.get("class"),
        optimizer_state=optimizer_state,
        rng_state=meta["rng"],
        history=meta["history"],
        progress=meta["progress"],
        extra=meta["extra"],
        path=path,
    )


# --------------------------------------------------------------------------- the schema
#
# One validator, ``check_metadata``, for every JSON field a checkpoint holds; ``save`` applies it
# before writing and ``load_training_state`` (so every load) after reading. A field that breaks
# it raises _Bad, which the caller turns into a CheckpointError naming the file.


class _Bad(Exception):
    """A field of a checkpoint's metadata breaks the schema; the text names it and what was
    expected."""


OPTIMIZERS = ("Adam", "SGD")
# The numbers an epoch's record may hold, and the ones a resumable run's records must hold
# (the summary and the curves read them).
RECORD_NUMBERS = ("epoch", "loss", "recon", "kl", "beta", "seconds", "examples_per_s", "lr",
                  "val_loss", "val_recon", "val_kl")
RECORD_KEYS = ("epoch", "loss", "recon", "kl", "beta", "seconds", "examples_per_s")
PROGRESS_KEYS = ("epoch", "step", "shuffle_seed", "n_train", "batch_size", "sums")
SUMS_KEYS = ("loss", "recon", "kl", "seconds", "beta")


def _is_int(v, low=0, high=None):
    return (isinstance(v, int) and not isinstance(v, bool) and v >= low
            and (high is None or v < high))


def _is_number(v, low=-math.inf, finite=True):
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= low
            and (math.isfinite(v) or not finite))


def _one_of(*choices):
    return lambda v: v in choices, f"one of {', '.join(map(repr, choices))}"


def _ints(low, n=None):
    return (lambda v: isinstance(v, list) and all(_is_int(h, low) for h in v)
            and (n is None or len(v) == n)), f"a list of integers ≥ {low}" + (
                f", {n} of them" if n else "")


_INT1 = (lambda v: _is_int(v, 1), "an integer ≥ 1")
_INT0 = (lambda v: _is_int(v, 0), "an integer ≥ 0")
_NONNEG = (lambda v: _is_number(v, 0), "a number ≥ 0")
_TEXT = (lambda v: v is None or isinstance(v, str), "text (or null)")
_FLAG = (lambda v: isinstance(v, bool), "true or false")

# The settings ``npvae train`` saves under extra["args"] (cli.TRAIN_DEFAULTS), by type.
ARGS = {
    "dataset": _one_of("mnist", "fashion-mnist"), "epochs": _INT1, "batch_size": _INT1,
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0"), "latent_dim": _INT1,
    "hidden": _ints(1), "likelihood": _one_of(*LIKELIHOODS),
    "activation": _one_of(*sorted(ACTIVATIONS)),
    "binarize": _one_of("dynamic", "static", "none", None), "beta": _NONNEG, "warmup": _NONNEG,
    "objective": _one_of(*OBJECTIVES), "k": _INT1, "free_bits": _NONNEG, "seed": _INT0,
    "val": (lambda v: v is None or _is_int(v), "an integer ≥ 0 (or null)"),
    "conditional": _FLAG, "textbook": _FLAG, "source": _TEXT,
    "sigma": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "latent_dims": (lambda v: v is None or _ints(1, 2)[0](v), "two integers ≥ 1 (or null)"),
    "labels": (lambda v: v is None or _is_int(v, 1), "an integer ≥ 1 (or null)"),
    "alpha": (lambda v: v is None or _is_number(v, 0), "a number ≥ 0 (or null)"),
    "labelled_share": (lambda v: v is None or (_is_number(v) and v > 0),
                       "a number > 0 (or null)"),
}
# The entries of extra that npvae itself writes and reads back (others are free metadata).
EXTRA = {"dataset": _TEXT, "data_dir": _TEXT, "source": _TEXT, "origin": _TEXT, "seed": _INT0,
         "binarize": ARGS["binarize"], "test_fingerprint": _TEXT, "data_name": _TEXT,
         "image_shape": (lambda v: v is None or _ints(1, 2)[0](v),
                         "the images' [H, W], two integers ≥ 1 (or null)"),
         "best_epoch": _INT1, "best_val_loss": (_is_number, "a finite number")}


def check_metadata(meta):
    """Check the parsed JSON fields of a checkpoint (optimizer, model_rng, rng, history,
    progress, extra) against the schema, and against each other; raise _Bad naming the
    first field that breaks it and what was expected."""
    optimizer = meta["optimizer"]
    if optimizer is not None and not (
            isinstance(optimizer, dict) and optimizer.get("class") in OPTIMIZERS
            and _is_number(optimizer.get("lr")) and optimizer["lr"] > 0):
        raise _Bad(f"the saved 'optimizer' is {_short(optimizer)}; expected an object like "
                   f'{{"class": "Adam", "lr": 0.001}} (class one of {", ".join(OPTIMIZERS)})')
    for field in ("model_rng", "rng"):
        if meta[field] is not None:
            _generator(meta[field], field)
    history, progress = meta["history"], meta["progress"]
    _check_history(history, resumable=isinstance(progress, dict) and "shuffle_seed" in progress)
    if progress is not None:
        _check_progress(progress, len(history))
    _check_extra(meta["extra"], progress)


def check_history(history, resumable=True):
    """Raise CheckpointError if ``history`` (records to extend, as ``npvae.train`` takes them)
    is not what a checkpoint may hold."""
    try:
        _check_history(json.loads(json.dumps(list(history), default=files.to_builtin)),
                       resumable)
    except _Bad as bad:
        raise CheckpointError(f"the history given cannot be saved in a checkpoint: {bad}.") \
            from None


def _check_history(history, resumable):
    """A list of records, epoch i + 1 at index i, their numbers numbers; a resumable run's
    records each hold RECORD_KEYS."""
    if not isinstance(history, list):
        raise _Bad(f"the saved 'history' is a {type(history).__name__}, not a list of epoch "
                   f"records")
    for i, record in enumerate(history):
        if not (isinstance(record, dict) and _is_number(record.get("epoch"))):
            raise _Bad(f"record {i} of the saved 'history' lacks numbers for epoch")
        if record["epoch"] != i + 1:
            raise _Bad(f"record {i} of the saved 'history' is for epoch {record['epoch']}; "
                       f"expected epoch {i + 1} (records are kept in order, from epoch 1)")
        wrong = [key for key in RECORD_NUMBERS if key in record
                 and not (key == "beta" and record[key] is None)  # an epoch of no steps
                 and not _is_number(record[key], finite=key != "examples_per_s")]
        missing = [key for key in RECORD_KEYS if key not in record] if resumable else []
        if wrong or missing:
            raise _Bad(f"record {i} of the saved 'history' "
                       + (f"lacks {', '.join(missing)}" if missing else
                          f"holds {', '.join(f'{k}={record[k]!r}' for k in wrong)}")
                       + f"; expected numbers for {', '.join(RECORD_KEYS)}")


def _check_progress(progress, epochs_done):
    """The training loop's position: counts in range, and the epoch the history's length."""
    if not isinstance(progress, dict):
        raise _Bad(f"the training progress is {_short(progress)}; expected an object")
    if "shuffle_seed" not in progress:  # an older npvae's; resume refuses it, loading is fine
        return
    missing = [key for key in PROGRESS_KEYS if key not in progress]
    if missing:
        raise _Bad(f"the training progress lacks {', '.join(missing)}")
    p = progress
    for key, ok in (("epoch", _is_int(p["epoch"])), ("n_train", _is_int(p["n_train"], 1)),
                    ("batch_size", _is_int(p["batch_size"], 1)),
                    ("shuffle_seed", _is_int(p["shuffle_seed"], 0, 2**63)),
                    ("data_fingerprint", isinstance(p.get("data_fingerprint", ""), str))):
        if not ok:
            raise _Bad(f"the training progress holds {key}={p[key]!r}; expected "
                       + ("text" if key == "data_fingerprint" else "an integer ≥ 0"))
    steps = -(-p["n_train"] // p["batch_size"])
    if not (_is_int(p["step"]) and p["step"] < steps) or p.get("steps", steps) != steps:
        raise _Bad(f"the training progress is at step {p['step']!r} of an epoch of "
                   f"{p.get('steps', steps)!r} steps; expected a step from 0 to {steps - 1} "
                   f"of {steps} (= ⌈{p['n_train']} examples / batches of {p['batch_size']}⌉)")
    if p["epoch"] != epochs_done:
        raise _Bad(f"the training progress is at epoch {p['epoch']} (completed), but the "
                   f"history holds {epochs_done} epoch records; the two must agree")
    sums = p["sums"]
    if not (isinstance(sums, dict) and sorted(sums) == sorted(SUMS_KEYS)
            and all(_is_number(sums[k]) for k in SUMS_KEYS if k != "beta")
            and sums["seconds"] >= 0 and (sums["beta"] is None or _is_number(sums["beta"]))):
        raise _Bad(f"the training progress holds sums={_short(sums)}; expected finite numbers "
                   f"for {', '.join(SUMS_KEYS)} (seconds ≥ 0, beta a number or null)")


def _check_extra(extra, progress):
    """The metadata npvae writes: the known entries typed; saved training settings complete
    and typed, and their batch size the progress's."""
    if not isinstance(extra, dict):
        raise _Bad(f"the saved 'extra' metadata is {_short(extra)}; expected an object")
    _check_fields(extra, EXTRA, "the saved metadata's entry")
    args = extra.get("args")
    if args is None:
        return
    if not isinstance(args, dict):
        raise _Bad(f"the saved training settings ('args') are {_short(args)}; expected an "
                   f"object of npvae train's settings")
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise _Bad(f"the saved training settings ('args') hold unknown settings "
                   f"{', '.join(unknown)}; expected only {', '.join(ARGS)}")
    _check_fields(args, ARGS, "the saved training setting")
    if (isinstance(progress, dict) and "batch_size" in args
            and progress.get("batch_size", args["batch_size"]) != args["batch_size"]):
        raise _Bad(f"the saved training setting batch_size={args['batch_size']} differs from "
                   f"the training progress's batch_size={progress['batch_size']}")


def _check_fields(values, schema, what):
    for key, (ok, expected) in schema.items():
        if key in values and not ok(values[key]):
            raise _Bad(f"{what} {key}={_short(values[key])}; expected {expected}")


def _short(value):
    """A JSON value, for a message: its text, cut at 60 characters."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
