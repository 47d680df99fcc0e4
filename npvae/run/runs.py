"""A training run's bookkeeping: where it stands, its checkpoints, resuming, Ctrl-C and progress.

The training loop (``npvae.run.training``) does the arithmetic; a ``Run`` keeps what surrounds it:

    run = Run(out_dir, model, optimizer, rng, history)
    state = run.resume(path, n, batch_size)   or   run.start(n, batch_size)
    ... state.step, state.sums ...            the position within the epoch and its sums
    run.end_epoch(record, state)              history, checkpoint.npz, history.json and .csv
    run.interrupt(state)                      save mid-epoch, raise TrainingInterrupted

What a checkpoint's "progress" holds is a ``Position``: the epoch and step reached, the seed of
the epochs' shuffling (``batching.epoch_permutation``), and the running sums of the epoch. With
the parameters, the optimizer state and the Generator's state beside it, that is all a resumed
run needs to continue bit for bit.
"""

import contextlib
import dataclasses
import hashlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import checkpoint
from . import files
from ..core.errors import CheckpointError, DataError, NpvaeError

try:
    import fcntl  # POSIX; where it is missing (Windows), run folders are not locked
except ImportError:  # pragma: no cover
    fcntl = None

HISTORY_FILE = "history.json"
HISTORY_CSV = "history.csv"  # the same records, one row per epoch, for a spreadsheet or pandas
SUMMARY_FILE = "summary.json"
# What a run writes beside its checkpoint; --overwrite clears them when the new run starts.
BEST_FILE = "best.npz"  # npvae train --save-best: the model at its lowest validation loss
OUTPUTS = (HISTORY_FILE, HISTORY_CSV, SUMMARY_FILE, BEST_FILE)
LOCK_FILE = ".npvae-lock"


class RunFolderBusy(NpvaeError, RuntimeError):
    """Another process is writing a run into the same folder, or the folder cannot be
    written."""


_held_locks = {}  # resolved lock path -> how many nested folder_lock blocks hold it here


@contextlib.contextmanager
def folder_lock(folder):
    """Hold the run folder ``folder`` for this process, for the length of the block.

    Another process asking for the same folder (a second ``npvae train --out`` into it, with
    or without --overwrite) gets RunFolderBusy at once, before it writes anything, so two runs
    never leave their files side by side. Nested blocks in one process share the lock. The
    folder is made if needed; if the block made it and fails before writing anything into
    it, it is removed again, so a failed run leaves no empty folder behind. The lock file,
    ``LOCK_FILE``, holds the pid of its holder and is removed when the block ends.
    """
    folder = Path(folder)
    made = not folder.exists()
    path = (folder / LOCK_FILE).resolve()
    if path in _held_locks:  # this process holds it already
        _held_locks[path] += 1
        try:
            yield
        finally:
            _held_locks[path] -= 1
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
    except OSError as exc:
        raise RunFolderBusy(f"cannot write to the output folder {folder} "
                            f"({exc.strerror or exc}); choose another (--out).") from exc
    with f:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                raise RunFolderBusy(f"another npvae process (pid {f.read().strip() or '?'}) is "
                                    f"writing a run in {folder}; wait for it to finish, or "
                                    f"choose another folder.") from None
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
        _held_locks[path] = 1
        try:
            yield
        finally:
            del _held_locks[path]
            path.unlink(missing_ok=True)  # while still locked, so no one else holds it
            if made and not any(folder.iterdir()):
                folder.rmdir()


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after a complete step; ``checkpoint`` is where it was saved.

    Attributes: checkpoint (Path or None), epochs_done (completed epochs), step (steps done in
    the next epoch), steps (steps per epoch), where (the two in words: "epoch 2, step 5 of 40"
    or "the end of epoch 1"), history (the completed epochs' records).
    """

    def __init__(self, message, checkpoint=None, epochs_done=0, step=0, steps=0, history=()):
        super().__init__(message)
        self.checkpoint, self.epochs_done = checkpoint, epochs_done
        self.step, self.steps = step, steps
        self.where = position_text(epochs_done, step, steps)
        self.history = list(history)


def history_csv(history):
    """The history's records as CSV text: a header row of every key (in order of first
    appearance), then one row per epoch; a key an epoch lacks is left empty."""
    columns = list(dict.fromkeys(key for record in history for key in record))
    rows = [",".join(columns)]
    rows += [",".join(_csv_cell(record.get(key, "")) for key in columns) for record in history]
    return "\n".join(rows) + "\n"


def _csv_cell(value):
    """repr-exact numbers (so the CSV reads back as the JSON does); other values as text."""
    return repr(float(value)) if isinstance(value, float) else str(value)


def position_text(epochs_done, step, steps):
    """ "the end of epoch 3", or "epoch 4, step 120 of 469" mid-epoch."""
    if step:
        return f"epoch {epochs_done + 1}, step {step} of {steps}"
    return f"the end of epoch {epochs_done}"


def _new_sums():
    """An epoch's running sums: loss, recon, kl (each × examples), seconds, the last beta."""
    return {"loss": 0.0, "recon": 0.0, "kl": 0.0, "seconds": 0.0, "beta": None}


@dataclasses.dataclass
class Position:
    """Where training stands: the "progress" of a checkpoint.

    epoch : completed epochs (the 0-based index of the epoch under way).
    step : steps done in that epoch.
    steps : steps per epoch, ⌈n_train / batch_size⌉.
    shuffle_seed : the seed of every epoch's order, ``batching.epoch_permutation``.
    n_train, batch_size : the data and batches the position refers to.
    sums : the epoch's running sums (``_new_sums``).
    data_fingerprint : ``data_fingerprint`` of the training data ("" in older checkpoints).
    """

    epoch: int
    step: int
    steps: int
    shuffle_seed: int
    n_train: int
    batch_size: int
    sums: dict = dataclasses.field(default_factory=_new_sums)
    data_fingerprint: str = ""

    def next_epoch(self):
        return dataclasses.replace(self, epoch=self.epoch + 1, step=0, sums=_new_sums())

    def text(self):
        return position_text(self.epoch, self.step, self.steps)


class Run:
    """The state around a training loop: history, checkpoints and where they stand."""

    def __init__(self, out_dir, model, optimizer, rng, history, extra=None, verbose=True):
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.ckpt_path = None if out_dir is None else self.out_dir / checkpoint.FILENAME
        self.model, self.optimizer, self.rng = model, optimizer, rng
        self.history, self.extra, self.verbose = history, extra, verbose
        self.saved_at = None  # where the last checkpoint written or resumed from stands

    def start(self, n, batch_size, steps, fingerprint=""):
        """The position of a fresh run (or one extending ``history``): its shuffle seed is the
        training Generator's first draw."""
        if self.out_dir is not None:  # records it cannot save are refused before training
            checkpoint.check_history(self.history)
        seed = int(self.rng.integers(2**63))
        return Position(len(self.history), 0, steps, seed, n, batch_size,
                        data_fingerprint=fingerprint)

    def resume(self, path, n, batch_size, steps, fingerprint=""):
        """Restore model, optimizer, rng and history from a checkpoint; return its position.
        The training data must be the run's (same ``data_fingerprint``), else CheckpointError."""
        state = checkpoint.load_training_state(path, self.model)
        kind = type(self.optimizer).__name__
        if state.optimizer_state is None or state.rng_state is None or state.progress is None:
            raise CheckpointError(f"{state.path} holds a model but not a training state "
                                  f"(optimizer, RNG and progress); it cannot be resumed. Load "
                                  f"it with npvae.load.")
        if state.optimizer_class != kind:
            raise CheckpointError(f"{state.path} was trained with {state.optimizer_class}, but "
                                  f"the optimizer given is {kind}; resume with the same "
                                  f"optimizer.")
        saved = _position(state.path, state.progress, steps)
        if saved.data_fingerprint and fingerprint and saved.data_fingerprint != fingerprint:
            raise CheckpointError(f"{state.path} was trained on other data than is given now "
                                  f"(data fingerprint {saved.data_fingerprint}, now "
                                  f"{fingerprint}); resume with the run's data (the same "
                                  f"--data-dir or --data, split and binarization).")
        if saved.step and (saved.n_train, saved.batch_size) != (n, batch_size):
            raise CheckpointError(
                f"{state.path} was saved in the middle of an epoch of {saved.n_train} examples "
                f"in batches of {saved.batch_size}; resume with the same training data and "
                f"batch size (here: {n} examples, batches of {batch_size}).")
        try:
            self.optimizer.load_state_dict(state.optimizer_state)
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{state.path}: the saved optimizer state does not fit this "
                                  f"model ({exc}); the file is corrupt.") from None
        checkpoint.set_state(self.rng, state.rng_state, state.path)
        self.history[:] = state.history
        self.saved_at = saved.text()
        if self.verbose:
            print(f"resuming at {self.saved_at}", flush=True)
        return dataclasses.replace(saved, n_train=n, batch_size=batch_size,
                                   data_fingerprint=fingerprint)

    def save(self, position):
        try:
            checkpoint.save(self.ckpt_path, self.model, self.optimizer, self.history, self.rng,
                            self.extra, dataclasses.asdict(position))
        except files.WriteError as err:
            raise self._write_failed(err) from err

    def end_epoch(self, record, position):
        """Append the epoch's record; write checkpoint.npz, history.json and history.csv
        (with out_dir). A failed write (a full disk) is a WriteError saying what is kept."""
        self.history.append(record)
        if self.out_dir is not None:
            self.save(position)
            self.saved_at = position.text()
            text = history_csv(self.history)
            try:
                files.write_json(self.out_dir / HISTORY_FILE, self.history)
                files.atomic_write(self.out_dir / HISTORY_CSV, lambda f: f.write(text.encode()))
            except files.WriteError as err:
                raise self._write_failed(err) from err

    def _write_failed(self, err):
        """The WriteError ``err`` (which names the file, the cause and the fix), with what
        training stopped at and which checkpoint is kept."""
        if self.saved_at:
            kept = (f"The last good checkpoint, {self.ckpt_path} (at {self.saved_at}), is kept: "
                    f"once fixed, continue from it with npvae train --resume {self.out_dir} (or "
                    f"npvae.train(..., resume={str(self.ckpt_path)!r})).")
        else:
            kept = ("No checkpoint of this run had been written yet"
                    + (f" (the older {self.ckpt_path} is untouched)" if self.ckpt_path.exists()
                       else "") + "; once fixed, start the run again.")
        return files.WriteError(f"training stopped: {err} {kept}", err.path, err.code)

    def kept_checkpoint(self):
        """" The last good checkpoint, ... is kept." for an error message, or ""."""
        if self.ckpt_path is None or not self.saved_at:
            return ""
        return f" The last good checkpoint, {self.ckpt_path} (at {self.saved_at}), is kept."

    def interrupt(self, position, save=True):
        """Save the state at ``position`` (if there is an out_dir, and ``save``) and stop."""
        where, ckpt = position.text(), self.ckpt_path
        stop = (position.epoch, position.step, position.steps, self.history)
        if ckpt is None:
            raise TrainingInterrupted(f"training interrupted at {where}; no checkpoint was "
                                      f"written (pass out_dir to get one).", None, *stop)
        if save:  # at an epoch's end, the epoch's checkpoint is already written
            self.save(position)
        raise TrainingInterrupted(f"training interrupted at {where}; its state is saved in "
                                  f"{ckpt}. Resume with npvae.train(..., resume={str(ckpt)!r}) "
                                  f"and the same data and settings.", ckpt, *stop)


def _position(path, progress, steps):
    """The Position saved in a checkpoint's progress, or a CheckpointError naming the field."""
    if not isinstance(progress, dict) or "shuffle_seed" not in progress:
        raise CheckpointError(f"{path}: its training progress was written by an older npvae, "
                              f"which shuffled differently; it cannot be resumed bit for bit. "
                              f"Load the model with npvae.load and train it afresh.")
    names = [f.name for f in dataclasses.fields(Position)
             if f.name not in ("steps", "data_fingerprint")]
    missing = [name for name in names if name not in progress]
    if not missing and not (isinstance(progress["sums"], dict)
                            and progress["sums"].keys() == _new_sums().keys()):
        missing = ["sums (loss, recon, kl, seconds, beta)"]
    if missing:
        raise CheckpointError(f"{path}: the training progress lacks {', '.join(missing)}; the "
                              f"file is corrupt.")
    return Position(steps=steps, data_fingerprint=str(progress.get("data_fingerprint", "")),
                    **{name: progress[name] for name in names})


def duration(seconds):
    """A duration in words for a progress line: "45 s", "3.7 min", "1.2 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class EtaReport:
    """The progress of a long computation, as lines on stderr (on a terminal or in a log):
    the expected time once the first part of the work is measured (after ``calibrate`` seconds
    or 1 %), then at most one line every ``every`` seconds with the share done and the time
    left. Call it with (done, total) after each part; a job shorter than ``calibrate`` prints
    nothing."""

    def __init__(self, what, stream=None, every=15.0, calibrate=0.5, clock=time.perf_counter):
        self.what, self.every, self.calibrate, self.clock = what, every, calibrate, clock
        self.stream = sys.stderr if stream is None else stream
        self.start = self.last = clock()
        self.estimated = False

    def __call__(self, done, total):
        now = self.clock()
        elapsed = now - self.start
        if done >= total or done <= 0:
            return
        left = elapsed / done * (total - done)
        if not self.estimated:
            if elapsed < self.calibrate and done < total / 100:
                return
            self.estimated, self.last = True, now
            self._write(f"{self.what}: about {duration(elapsed + left)} in all (measured on "
                        f"the first {done:,} of {total:,})")
        elif now - self.last >= self.every:
            self.last = now
            self._write(f"{self.what}: {100 * done / total:.0f} % ({done:,} of {total:,}), "
                        f"about {duration(left)} left")

    def _write(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()


class ProgressLine:
    """A progress line on stderr, redrawn in place (at most 10 times a second), on a terminal,
    with the time the epoch has left."""

    def __init__(self, verbose, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.on = verbose and self.stream.isatty()
        self.last = 0.0
        self.width = 0
        self.epoch_start = None  # (epoch, first step seen, its time): the ETA's reference

    def update(self, epoch, epochs, step, steps, loss):
        now = time.perf_counter()
        if self.epoch_start is None or self.epoch_start[0] != epoch:
            self.epoch_start = (epoch, step, now)
        if not self.on or (now - self.last < 0.1 and step < steps):
            return
        self.last = now
        bar = "#" * (20 * step // steps)
        _, step0, t0 = self.epoch_start
        eta = (f"  {duration((now - t0) / (step - step0) * (steps - step))} left"
               if step > step0 else "")
        text = f"epoch {epoch + 1}/{epochs} [{bar:20s}] {step}/{steps}  loss {loss:.3f}{eta}"
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()

    def clear(self):
        if self.on and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


class StopRequest:
    """Within the block, a first Ctrl-C (SIGINT) or SIGTERM only sets ``requested``; the loop
    stops at the end of the step and saves. A second Ctrl-C raises KeyboardInterrupt at once.
    (Main thread only: elsewhere, Python delivers no signals and nothing changes.)

    SIGTERM is what a cluster scheduler, a closed laptop lid or ``kill`` sends: it is taken as a
    request to stop and save, like Ctrl-C.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, verbose):
        self.verbose = verbose
        self.requested = False
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                previous = signal.getsignal(signum)
                if previous is not None:  # None: a handler not set from Python; leave it alone
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        if self.verbose:
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\n{name}: stopping after this step and saving a checkpoint "
                  f"(press Ctrl-C again to abort without saving).", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        return False


def clear_outputs(folder):
    """Remove the files an older run wrote beside its checkpoint (OUTPUTS), as an overwriting
    run starts, so that the old run's summary and history never sit beside the new run's."""
    for name in OUTPUTS:
        try:
            (Path(folder) / name).unlink(missing_ok=True)
        except OSError as exc:
            raise files.WriteError(f"cannot remove the older run's {Path(folder) / name} "
                                   f"({exc.strerror or exc}); remove it, or choose another "
                                   f"--out.", Path(folder) / name, exc.errno) from exc


def run_test_data(meta, dataset=None, data_dir=None, dtype=np.float32):
    """The test examples of the run a checkpoint describes (its metadata ``meta``, as
    ``checkpoint.load_with_metadata`` gives it), or of ``dataset`` when it names another data
    set: (origin in words, x (M, D) of ``dtype``, y (M,) or None).

    The run's own data must be the data it was trained with: when the checkpoint recorded a
    fingerprint of its test examples ("test_fingerprint", written by ``npvae train``), data
    that differs (a file edited or replaced since, another copy of the data set) is refused
    with a DataError, as ``--resume`` refuses other training data.
    """
    from . import data

    args = meta.get("args") or {}
    recorded = meta.get("dataset") or "mnist"
    dataset = dataset or recorded
    own = dataset == recorded
    source = (meta.get("source") or args.get("source") or "files") if own else "files"
    origin = meta.get("origin", dataset) if source != "files" else dataset
    x, y = data.load_test_data(dataset, data_dir or meta.get("data_dir"), source,
                               seed=meta.get("seed", args.get("seed", 0)))  # float32
    saved = meta.get("test_fingerprint")
    if own and saved and data_fingerprint(x, y) != saved:
        folder = data_dir or meta.get("data_dir") or "the usual places"
        where = source if source not in ("files", "test-split", "bundled") else (
            f"the {dataset} files found (in {folder})")
        raise DataError(
            f"{where} is not the data {meta.get('path', 'the checkpoint')} was trained with: "
            f"its test examples have fingerprint {data_fingerprint(x, y)}, the run recorded "
            f"{saved}, so the file was edited or replaced since. Restore the run's data (or "
            f"point --data-dir at it), or train a new run on this data.")
    return origin, x.astype(dtype, copy=False), y


def data_fingerprint(*arrays):
    """A short hash of the arrays' bytes, dtypes and shapes (None entries skipped): equal for
    the same training data, different for any other."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def non_finite(loss, grads):
    """What went wrong ("the loss is nan", "the gradient of mu.W reached inf"), or "" if all
    is well.

    A gradient counts as non-finite when its squared norm Σ g², one BLAS dot product, is NaN
    or overflows: that is the case for any NaN or any |g| from √(largest float) up (≈ 1.8e19 in
    float32), where Adam's second moment g² would overflow. No healthy run comes anywhere near.
    """
    if not np.isfinite(loss):
        return f"the loss is {loss}"
    return overflowing("gradient", grads)


def overflowing(what, arrays):
    """"the <what> of <name> reached <max |value|>" for the first array whose Σ a² is NaN or
    overflows, or ""."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is what is looked for
        for name, a in arrays.items():
            flat = a.reshape(-1)
            if not np.isfinite(flat @ flat):
                return f"the {what} of {name} reached {np.abs(a).max():.3g}"
    return ""
