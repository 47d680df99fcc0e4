"""The training loop: minibatch Adam on the negative ELBO, with checkpoints that resume bit for bit.

    history = npvae.train(model, x_train, epochs=10, x_val=x_val, binarize="dynamic",
                          out_dir="runs/mnist")

One epoch draws, from the training Generator ``rng`` and in this order:
    1. a permutation of the N training examples; batch i is the slice perm[i·B : (i+1)·B]
       (the last batch may be smaller; every example is seen once per epoch);
    2. for each batch, in order: its binary pixels (``binarize="dynamic"``), then its noise eps.
Each step runs ``model.loss_and_grads``, checks that the loss is finite and every gradient finite
and below √(largest float) (so that Adam can square it), and only then calls ``optimizer.step``.

Resuming is bit-exact. A checkpoint stores the parameters, the optimizer state (with its step
count), the Generator's state, the history, and the position in the current epoch: the step
reached, the Generator's state at the start of the epoch (from which the permutation is drawn
again) and the running sums of the epoch's loss. So a run stopped at any step and resumed with
the same data and settings ends with exactly the parameters of an uninterrupted run.

Ctrl-C (SIGINT) does not interrupt a step: the step finishes, a checkpoint of the state after it
is written to ``out_dir``, and ``TrainingInterrupted`` is raised. A second Ctrl-C aborts at once,
without saving (the previous checkpoint is kept).

Shapes: N examples, B batch, D input.
"""

import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import checkpoint, checks, data, evaluate
from .errors import CheckpointError, NpvaeError
from .optim import Adam
from .vae import OBJECTIVES

BINARIZE = ("dynamic", "static", None)
HISTORY_FILE = "history.json"


class NonFiniteLossError(NpvaeError, FloatingPointError):
    """Training met a NaN or infinite loss, or a NaN or overflowing gradient, and stopped
    before applying it."""


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
        self.where = _position(epochs_done, step, steps)
        self.history = list(history)


def warmup_beta(step, steps_per_epoch, beta=1.0, warmup_epochs=0):
    """The KL weight at training step ``step`` (0-based, counted across epochs).

    beta_t = beta · min(1, t / (warmup_epochs · steps_per_epoch)): it rises linearly, step by
    step, from 0 at the first step to ``beta`` after ``warmup_epochs`` epochs.
    """
    if warmup_epochs == 0:
        return float(beta)
    return float(beta) * min(1.0, step / (warmup_epochs * steps_per_epoch))


def train(model, x_train, *, epochs=10, batch_size=128, lr=1e-3, optimizer=None, x_val=None,
          beta=1.0, warmup_epochs=0, binarize=None, objective="elbo", k=1, free_bits=0.0,
          rng=None, history=None, resume=None, out_dir=None, extra=None, hooks=(),
          verbose=True, val_seed=0, val_batch_size=1000):
    """Train ``model`` by minibatch gradient descent on the negative ELBO (or IWAE bound).

    Parameters
    ----------
    model : VAE, trained in place.
    x_train : (N, D) floating array (in [0, 1] for a Bernoulli likelihood or binarization).
    epochs : int, the total number of epochs: training continues until the history holds
        this many (so with ``history`` or ``resume``, only the missing ones run).
    batch_size : int, B.
    lr : float, the learning rate of the default optimizer, Adam(model.params, lr).
    optimizer : an optimizer over ``model.params`` to use instead (e.g. SGD).
    x_val : (M, D) array or None. The validation -ELBO (beta = 1, one eps per example from a
        generator re-seeded with ``val_seed`` every epoch, so epochs compare) is recorded.
    beta : float ≥ 0, the weight of the KL.
    warmup_epochs : float ≥ 0. The KL weight rises linearly per step from 0 to ``beta`` over
        this many epochs (see ``warmup_beta``); 0 means no warm-up.
    binarize : "dynamic" (a fresh Bernoulli draw of each batch's pixels every epoch, from
        ``rng``; x_val is binarized once, with a generator seeded by ``val_seed``), "static" (the
        caller binarized the data once, e.g. with ``npvae.data.binarize``; it must be 0/1), or
        None (the data is used as it is).
    objective, k, free_bits : passed to ``model.loss_and_grads`` ("elbo" or "iwae", samples per
        example, free-bits floor in nats).
    rng : Generator or None (the model's own, ``model.rng``): the permutations, the dynamic
        binarization and the noise eps. On resume its state is set to the saved one.
    history : list of records to extend (e.g. from an earlier call), or None.
    resume : path of a checkpoint (or its run folder) to continue from. The model's config
        must equal the saved one; the parameters, the optimizer state, the Generator state, the
        history and the position in the epoch are restored. Pass the same data and settings.
    out_dir : folder, or None. If given, ``checkpoint.npz`` and ``history.json`` are written
        there (atomically) after every epoch, and ``checkpoint.npz`` on Ctrl-C.
    extra : JSON-serialisable dict stored in the checkpoints (the CLI stores its flags).
    hooks : callables ``hook(epoch, record, model)``, called after each epoch (1-based
        ``epoch``) before the checkpoint is written; a hook may add entries to ``record``.
        If one returns True, training stops after this epoch.
    verbose : bool. A line per epoch on stdout; on a terminal also a live progress line on
        stderr within the epoch. False prints nothing.
    val_seed : int, seeds the validation noise (and the validation binarization).
    val_batch_size : int, examples per forward pass of the validation.

    Returns
    -------
    history : list of dicts, one per epoch: "epoch" (1-based), "loss" (the objective
        minimised, beta-weighted), "recon", "kl" (nats per example, averaged over the epoch),
        "beta" (at the epoch's last step), "seconds" (training and validation),
        "examples_per_s" (training steps only), and "val_loss" (the -ELBO), "val_recon",
        "val_kl" with x_val.

    Raises
    ------
    NonFiniteLossError : the loss or a gradient was NaN or infinite (or a gradient overflowed
        when squared); that step was not applied, and no checkpoint is written over.
    TrainingInterrupted : Ctrl-C; the state after the last complete step is in out_dir.
    """
    _check_settings(epochs, batch_size, beta, warmup_epochs, binarize, objective, k, free_bits)
    if resume is not None and history is not None:
        raise ValueError("pass either history or resume: resuming restores the saved history.")
    unit = model.config.likelihood == "bernoulli" or binarize is not None
    x_train = checks.as_batch(x_train, model.input_dim, model.dtype, "x_train", unit)
    if binarize == "static" and not ((x_train == 0) | (x_train == 1)).all():
        raise ValueError("binarize='static' needs binary (0/1) data: binarize it once first, "
                         "e.g. x = npvae.data.binarize(x, rng), or use binarize='dynamic'.")
    val_eps_seed, val_binarize_seed = np.random.SeedSequence(val_seed).spawn(2)
    if x_val is not None:
        x_val = checks.as_batch(x_val, model.input_dim, model.dtype, "x_val", unit)
        if binarize == "dynamic":
            x_val = data.binarize(x_val, np.random.default_rng(val_binarize_seed))

    rng = model.rng if rng is None else rng
    optimizer = Adam(model.params, lr=lr) if optimizer is None else optimizer
    history = [] if history is None else history
    out_dir = None if out_dir is None else Path(out_dir)
    ckpt_path = None if out_dir is None else out_dir / checkpoint.FILENAME
    n = len(x_train)
    steps = math.ceil(n / batch_size)
    acc = _new_epoch()
    if resume is not None:
        acc = _resume(resume, model, optimizer, rng, history, n, batch_size)
    # Where the last checkpoint written or resumed from stands, for the divergence message.
    saved_at = None if resume is None else _position(len(history), acc["step"], steps)
    if verbose and resume is not None:
        print(f"resuming at {saved_at}", flush=True)

    def save(progress):
        checkpoint.save(ckpt_path, model, optimizer, history, rng, extra, progress)

    def progress(epoch, acc):
        return {"epoch": epoch, "n_train": n, "batch_size": batch_size, **acc}

    live = _Live(verbose)
    with _StopOnCtrlC(verbose) as ctrl_c:
        for epoch in range(len(history), epochs):  # 0-based here; records count from 1
            started = time.perf_counter()
            if acc["step"] == 0:
                acc["epoch_rng_state"] = rng.bit_generator.state
                perm = rng.permutation(n)  # (N,)
            else:  # resuming mid-epoch: draw the epoch's permutation again, then carry on
                current = rng.bit_generator.state
                rng.bit_generator.state = acc["epoch_rng_state"]
                perm = rng.permutation(n)
                rng.bit_generator.state = current
            for step in range(acc["step"], steps):
                xb = x_train[perm[step * batch_size:(step + 1) * batch_size]]  # (B, D)
                if binarize == "dynamic":
                    xb = data.binarize(xb, rng)
                beta_t = warmup_beta(epoch * steps + step, steps, beta, warmup_epochs)
                # Overflow may happen on the way to a non-finite loss; it is checked just below.
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    loss, grads, stats = model.loss_and_grads(
                        xb, beta=beta_t, rng=rng, objective=objective, k=k, free_bits=free_bits)
                bad = _non_finite(loss, grads)
                if bad:
                    raise NonFiniteLossError(_divergence_message(
                        bad, epoch, step, steps, optimizer, ckpt_path, saved_at))
                optimizer.step(grads)
                for key in ("loss", "recon", "kl"):
                    acc[key] += stats[key] * len(xb)
                acc.update(step=step + 1, beta=beta_t)
                acc["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                seen = min(n, (step + 1) * batch_size)  # examples so far in this epoch
                live.update(epoch, epochs, step + 1, steps, acc["loss"] / seen)
                if ctrl_c.requested and step + 1 < steps:
                    live.clear()
                    _interrupt(save if out_dir else None, progress(epoch, acc), ckpt_path,
                               epoch, step + 1, steps, history)  # epoch: completed epochs
            live.clear()
            record = _record(epoch, n, acc, model, x_val, val_eps_seed, val_batch_size)
            record["seconds"] += time.perf_counter() - started
            bad = [name for name, p in model.params.items() if not np.isfinite(p).all()]
            if bad:
                raise NonFiniteLossError(_divergence_message(
                    f"parameter {bad[0]} is no longer finite", epoch, steps - 1, steps,
                    optimizer, ckpt_path, saved_at))
            history.append(record)
            stop = any([hook(epoch + 1, record, model) is True for hook in hooks])
            acc = _new_epoch()
            if out_dir is not None:
                save(progress(epoch + 1, acc))
                checkpoint.save_json(out_dir / HISTORY_FILE, history)
                saved_at = _position(epoch + 1, 0, steps)
            # The line is printed once the epoch is safe on disk. The Ctrl-C flag is read
            # before it, so a Ctrl-C after the line stops within the next epoch.
            stop_now = ctrl_c.requested and epoch + 1 < epochs
            if verbose:
                print(_epoch_line(record, epochs), flush=True)
            if stop_now:
                _interrupt(save if out_dir else None, None, ckpt_path, epoch + 1, 0, steps,
                           history)
            if stop:
                break
    return history


def _check_settings(epochs, batch_size, beta, warmup_epochs, binarize, objective, k, free_bits):
    for name, value in [("epochs", epochs), ("batch_size", batch_size), ("k", k)]:
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    for name, value in [("beta", beta), ("warmup_epochs", warmup_epochs),
                        ("free_bits", free_bits)]:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}.")
    if binarize not in BINARIZE:
        raise ValueError(f"unknown binarize {binarize!r}; choose one of "
                         f"{', '.join(map(repr, BINARIZE))}.")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}.")
    if objective == "iwae" and (beta != 1 or warmup_epochs or free_bits):
        raise ValueError("the IWAE objective has no beta, warm-up or free bits; use "
                         "objective='elbo' for those.")


def _new_epoch():
    """The running state of an epoch: steps done, weighted sums, seconds, last beta."""
    return {"step": 0, "loss": 0.0, "recon": 0.0, "kl": 0.0, "seconds": 0.0, "beta": None,
            "epoch_rng_state": None}


def _resume(path, model, optimizer, rng, history, n, batch_size):
    """Restore model, optimizer, rng and history from a checkpoint; return the epoch state."""
    state = checkpoint.load_training_state(path, model)
    kind = type(optimizer).__name__
    if state.optimizer_state is None or state.rng_state is None or state.progress is None:
        raise CheckpointError(f"{state.path} holds a model but not a training state (optimizer, "
                              f"RNG and progress); it cannot be resumed. Load it with npvae.load.")
    if state.optimizer_class != kind:
        raise CheckpointError(f"{state.path} was trained with {state.optimizer_class}, but the "
                              f"optimizer given is {kind}; resume with the same optimizer.")
    progress = state.progress
    if progress["step"] and (progress["n_train"], progress["batch_size"]) != (n, batch_size):
        raise CheckpointError(
            f"{state.path} was saved in the middle of an epoch of {progress['n_train']} examples "
            f"in batches of {progress['batch_size']}; resume with the same training data and "
            f"batch size (here: {n} examples, batches of {batch_size}).")
    optimizer.load_state_dict(state.optimizer_state)
    checkpoint.set_state(rng, state.rng_state)
    history[:] = state.history
    return {key: progress[key] for key in _new_epoch()}


def _non_finite(loss, grads):
    """What went wrong ("the loss is nan", "the gradient of mu.W reached inf"), or "" if all
    is well.

    A gradient counts as non-finite when its squared norm Σ g², one BLAS dot product, is NaN
    or overflows: that is the case for any NaN or any |g| from √(largest float) up (≈ 1.8e19 in
    float32), where Adam's second moment g² would overflow. No healthy run comes anywhere near.
    """
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is what is looked for
        for name, g in grads.items():
            flat = g.reshape(-1)
            if not math.isfinite(flat @ flat):
                return f"the gradient of {name} reached {np.abs(g).max():.3g}"
    return ""


def _position(epochs_done, step, steps):
    """ "the end of epoch 3", or "epoch 4, step 120 of 469" mid-epoch."""
    if step:
        return f"epoch {epochs_done + 1}, step {step} of {steps}"
    return f"the end of epoch {epochs_done}"


def _divergence_message(what, epoch, step, steps, optimizer, ckpt_path, saved_at):
    lr = optimizer.lr
    message = (f"training diverged at epoch {epoch + 1}, step {step + 1} of {steps}: {what}. "
               f"The step was not applied. The likely cause is a learning rate too high "
               f"(lr = {lr:g}): try a lower one, e.g. --lr {min(lr / 10, 1e-3):g}.")
    if ckpt_path is not None and saved_at:
        message += f" The last good checkpoint, {ckpt_path} (at {saved_at}), is kept."
    return message


def _interrupt(save, progress, ckpt_path, epochs_done, step, steps, history):
    """Save the state after the last complete step (if there is an out_dir) and stop."""
    where = _position(epochs_done, step, steps)
    if save is None:
        raise TrainingInterrupted(f"training interrupted at {where}; no checkpoint was written "
                                  f"(pass out_dir to get one).", None, epochs_done, step, steps,
                                  history)
    if progress is not None:
        save(progress)  # at an epoch's end, the epoch's checkpoint is already written
    raise TrainingInterrupted(f"training interrupted at {where}; its state is saved in "
                              f"{ckpt_path}. Resume with npvae.train(..., "
                              f"resume={str(ckpt_path)!r}) and the same data and settings.",
                              ckpt_path, epochs_done, step, steps, history)


def _record(epoch, n, acc, model, x_val, val_eps_seed, val_batch_size):
    """The history entry of a finished epoch (and the validation -ELBO, if x_val is given)."""
    record = {"epoch": epoch + 1, "loss": acc["loss"] / n, "recon": acc["recon"] / n,
              "kl": acc["kl"] / n, "beta": acc["beta"], "seconds": acc["seconds"],
              "examples_per_s": n / acc["seconds"] if acc["seconds"] > 0 else math.inf}
    if x_val is not None:
        val = evaluate.elbo(model, x_val, rng=np.random.default_rng(val_eps_seed),
                            batch_size=val_batch_size)
        record.update(val_loss=-val["elbo"], val_recon=val["recon"], val_kl=val["kl"])
    return record


def _epoch_line(r, epochs):
    width = len(str(epochs))
    line = (f"epoch {r['epoch']:{width}d}/{epochs}  loss {r['loss']:.3f}  recon {r['recon']:.3f}"
            f"  kl {r['kl']:.3f}")
    if "val_loss" in r:
        line += f"  val {r['val_loss']:.3f}"
    return line + (f"  beta {r['beta']:.3g}  {r['seconds']:.1f} s"
                   f"  {r['examples_per_s']:.0f} ex/s")


class _Live:
    """A progress line on stderr, redrawn in place (at most 10 times a second), on a terminal."""

    def __init__(self, verbose, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.on = verbose and self.stream.isatty()
        self.last = 0.0
        self.width = 0

    def update(self, epoch, epochs, step, steps, loss):
        now = time.perf_counter()
        if not self.on or (now - self.last < 0.1 and step < steps):
            return
        self.last = now
        bar = "#" * (20 * step // steps)
        text = f"epoch {epoch + 1}/{epochs} [{bar:20s}] {step}/{steps}  loss {loss:.3f}"
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()

    def clear(self):
        if self.on and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


class _StopOnCtrlC:
    """Within the block, the first Ctrl-C only sets ``requested``; the loop stops at the end of
    the step. A second Ctrl-C raises KeyboardInterrupt at once. (Main thread only: elsewhere,
    Python delivers no signals and nothing changes.)"""

    def __init__(self, verbose):
        self.verbose = verbose
        self.requested = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # None: a handler not set from Python; leave it alone
                self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.verbose:
            print("\nCtrl-C: stopping after this step and saving a checkpoint "
                  "(press Ctrl-C again to abort without saving).", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
