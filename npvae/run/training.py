"""The training loop: minibatch Adam on the negative ELBO, with checkpoints that resume bit for bit.

    history = npvae.train(model, x_train, epochs=10, x_val=x_val, binarize="dynamic",
                          out_dir="runs/mnist")
    history = npvae.train(cvae, x_train, y=y_train, epochs=10)          # a conditional VAE

Three layers, each short:
    train_step(model, optimizer, x, ...)   one step: loss and gradients, a finiteness check,
                                           then optimizer.step
    _train_epoch(...)                      the minibatches of one epoch (``batching``)
    train(model, x, ...)                   the epochs, with a ``runs.Run`` for the history,
                                           checkpoints, resume and Ctrl-C

One epoch draws, in this order: the batches' order, ``batching.epoch_permutation(n, seed,
epoch)``, with a seed that is the training Generator's first draw of the run; then, from the
Generator, for each batch in order, its binary pixels (``binarize="dynamic"``) and its noise eps.
So a run stopped at any step and resumed with the same data and settings ends with exactly the
parameters of an uninterrupted run.

Ctrl-C (SIGINT) or SIGTERM does not interrupt a step: the step finishes, a checkpoint of the state
after it is written to ``out_dir``, and ``TrainingInterrupted`` is raised. A second Ctrl-C aborts
at once, without saving (the previous checkpoint is kept).

Shapes: N examples, B batch, D input.
"""

import contextlib
import dataclasses
import math
import time

import numpy as np

from ..core import checks
from . import data
from ..study import evaluate
from . import runs
from ..core.batching import minibatches, n_batches
from ..models.cvae import as_labels
from ..core.errors import NpvaeError
from ..core.optim import Adam
from .runs import TrainingInterrupted  # noqa: F401  (re-exported: npvae.run.training's public name)
from ..core.vae import OBJECTIVES

BINARIZE = ("dynamic", "static", None)


class NonFiniteLossError(NpvaeError, FloatingPointError):
    """Training met a NaN or infinite loss, or a NaN or overflowing gradient, and stopped
    before applying it."""


def warmup_beta(step, steps_per_epoch, beta=1.0, warmup_epochs=0):
    """The KL weight at training step ``step`` (0-based, counted across epochs).

    beta_t = beta · min(1, t / (warmup_epochs · steps_per_epoch)): it rises linearly, step by
    step, from 0 at the first step to ``beta`` after ``warmup_epochs`` epochs.
    """
    if warmup_epochs == 0:
        return float(beta)
    return float(beta) * min(1.0, step / (warmup_epochs * steps_per_epoch))


def train_step(model, optimizer, x, y=None, *, beta=1.0, rng=None, objective="elbo", k=1,
               free_bits=0.0):
    """One step of gradient descent on a batch x : (B, D) (with labels y : (B,) for a CVAE).

    Computes ``model.loss_and_grads``, checks that the loss is finite and that every gradient
    is finite and below √(largest float) (so that Adam can square it), and only then calls
    ``optimizer.step``. Returns the stats of the loss; raises NonFiniteLossError (naming what
    went wrong) without applying the step.
    """
    labels = () if y is None else (y,)
    kwargs = dict(beta=beta, rng=rng, objective=objective, k=k, free_bits=free_bits)
    if getattr(model, "discriminative", False):  # a Classifier: loss_and_grads(x, y), no ELBO
        kwargs = {}
    # Overflow may happen on the way to a non-finite loss; it is checked just below.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        loss, grads, stats = model.loss_and_grads(x, *labels, **kwargs)
    bad = runs.non_finite(loss, grads)
    if bad:
        raise NonFiniteLossError(bad)
    optimizer.step(grads)
    return stats


@dataclasses.dataclass(frozen=True)
class Settings:
    """The settings of a training run that every step reads, checked once."""

    epochs: int
    batch_size: int
    beta: float
    warmup_epochs: float
    binarize: object
    objective: str
    k: int
    free_bits: float
    fused: bool

    def __post_init__(self):
        for name in ("epochs", "batch_size", "k"):
            checks.positive_int(getattr(self, name), name)
        for name in ("beta", "warmup_epochs", "free_bits"):
            checks.nonnegative(getattr(self, name), name)
        if self.binarize not in BINARIZE:
            raise ValueError(f"unknown binarize {self.binarize!r}; choose one of "
                             f"{', '.join(map(repr, BINARIZE))}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of "
                             f"{', '.join(OBJECTIVES)}.")
        if self.objective == "iwae" and (self.beta != 1 or self.warmup_epochs
                                         or self.free_bits):
            raise ValueError("the IWAE objective has no beta, warm-up or free bits; use "
                             "objective='elbo' for those.")


@dataclasses.dataclass
class TrainingData:
    """The arrays of a run, checked: x (N, D), y (N,) or None, x_val (M, D) or None, y_val."""

    x: np.ndarray
    y: object
    x_val: object
    y_val: object


def train(model, x_train, *, y=None, epochs=10, batch_size=128, lr=1e-3, optimizer=None,
          x_val=None, y_val=None, beta=1.0, warmup_epochs=0, binarize=None, objective="elbo",
          k=1, free_bits=0.0, rng=None, history=None, resume=None, out_dir=None, extra=None,
          hooks=(), verbose=True, val_seed=0, val_batch_size=1000, fused=True):
    """Train ``model`` in place by minibatch Adam on the negative ELBO (or IWAE bound).

    model, x_train, y : a VAE or CVAE; (N, D) floats (in [0, 1] for a Bernoulli likelihood or
        binarization); (N,) int labels for a CVAE, else None.
    epochs : the total: training runs until the history holds this many epochs.
    batch_size, lr : B, and the learning rate of the default optimizer, Adam(model.params, lr).
    optimizer : an optimizer over ``model.params`` to use instead (e.g. SGD).
    x_val, y_val : validation data (and labels), or None: the -ELBO (beta = 1, noise re-seeded
        from ``val_seed`` every epoch, so epochs compare) is recorded each epoch.
    beta, warmup_epochs : the KL weight, reached linearly, step by step, over warmup_epochs.
    binarize : "dynamic" (fresh Bernoulli pixels per batch, from ``rng``; x_val binarized once
        from ``val_seed``), "static" (the data is already 0/1), or None (used as it is).
    objective, k, free_bits : passed to ``model.loss_and_grads``.
    rng : the Generator of the epochs' order (its first draw seeds it), the binarization and
        eps; None for ``model.rng``. Resuming sets its state to the saved one.
    history : records to extend, or None. resume : a checkpoint (or run folder) to continue
        from, bit for bit, with the same data and settings.
    out_dir, extra : where checkpoint.npz and history.json go after each epoch (and on
        Ctrl-C); JSON metadata stored in them.
    hooks : ``hook(epoch, record, model)`` after each epoch; one returning True stops training.
    verbose : an epoch line on stdout, and a live progress line on a terminal.
    val_batch_size : examples per validation forward pass.
    fused : the one switch between the textbook Adam (Kingma & Ba's Algorithm 1 as written,
        ``Adam(fused=False)``) and its fast twin (the same numbers to float rounding, in fewer
        passes over memory). The loss has one form, the one a reader meets.

    Returns the history: a dict per epoch, "epoch" (1-based), "loss", "recon", "kl" (nats per
    example, epoch means), "beta" (at its last step), "seconds", "examples_per_s", "lr" (the
    optimizer's learning rate, which a resumed run may change), and with
    x_val "val_loss", "val_recon", "val_kl". Raises NonFiniteLossError on divergence (the step
    is not applied, the last good checkpoint kept) and TrainingInterrupted on Ctrl-C/SIGTERM.
    """
    settings = Settings(epochs, batch_size, beta, warmup_epochs, binarize, objective, k,
                        free_bits, bool(fused))
    if resume is not None and history is not None:
        raise ValueError("pass either history or resume: resuming restores the saved history.")
    val_eps_seed, val_binarize_seed = np.random.SeedSequence(val_seed).spawn(2)
    arrays = _training_data(model, x_train, y, x_val, y_val, binarize, val_binarize_seed)
    if arrays.x_val is None and any(getattr(h, "needs_validation", False) for h in hooks):
        raise ValueError("early stopping and saving the best model follow the validation "
                         "loss: pass x_val (npvae train: --val N with N > 0).")
    rng = model.rng if rng is None else checks.as_generator(rng, "rng")
    optimizer = Adam(model.params, lr=lr, fused=fused) if optimizer is None else optimizer
    _check_optimizer(optimizer, model)
    run = runs.Run(out_dir, model, optimizer, rng, [] if history is None else history, extra,
                   verbose)
    n, steps = len(arrays.x), n_batches(len(arrays.x), batch_size)
    validate = (lambda: None) if arrays.x_val is None else (lambda: evaluate.validation_loss(
        model, arrays.x_val, rng=np.random.default_rng(val_eps_seed),
        batch_size=val_batch_size, y=arrays.y_val))
    if getattr(model, "discriminative", False):
        validate = _discriminative_settings(model, settings, arrays)
    with contextlib.nullcontext() if out_dir is None else runs.folder_lock(out_dir):
        fingerprint = ("" if out_dir is None and resume is None
                       else runs.data_fingerprint(arrays.x, arrays.y))
        position = (run.start(n, batch_size, steps, fingerprint) if resume is None
                    else run.resume(resume, n, batch_size, steps, fingerprint))
        return _run_epochs(model, optimizer, arrays, settings, rng, run, position, validate,
                           hooks, runs.ProgressLine(verbose))


def _run_epochs(model, optimizer, arrays, settings, rng, run, position, validate, hooks, line):
    """The epochs from ``position`` on, each checked and saved at its end: the history."""
    with runs.StopRequest(run.verbose) as stop:
        while position.epoch < settings.epochs:
            position = _train_epoch(model, optimizer, arrays, settings, rng, run, position,
                                    stop, line)
            record = _checked_record(model, position, len(arrays.x), validate, run, settings,
                                     optimizer.lr)
            done = position.next_epoch()
            halt = any([hook(done.epoch, record, model) is True for hook in hooks])
            run.end_epoch(record, done)
            # The line is printed once the epoch is safe on disk. The stop flag is read before
            # it, so a Ctrl-C after the line stops within the next epoch.
            stop_now = stop.requested and done.epoch < settings.epochs
            if run.verbose:
                print(_epoch_line(record, settings.epochs), flush=True)
            if stop_now:
                run.interrupt(done, save=False)
            if halt:
                break
            position = done
    return run.history


def _check_optimizer(optimizer, model):
    """Refuse an optimizer that would not update this model's own parameter arrays (one made
    for another model, or for a copy of the params): training would change nothing."""
    params = getattr(optimizer, "params", None)
    if not isinstance(params, dict) or params.keys() != model.params.keys() or any(
            params[name] is not p for name, p in model.params.items()):
        raise ValueError("optimizer must update this model's own parameters: build it from "
                         "them, e.g. npvae.Adam(model.params, lr=1e-3) (this one holds other "
                         "arrays, so training would leave the model unchanged).")


class EarlyStopping:
    """A hook for ``train(..., hooks=[...])`` that follows the validation loss (x_val needed).

    patience : N, or None: stop once N epochs have passed without a new lowest val_loss.
    best_path : a checkpoint path, or None: each new lowest val_loss saves the model there
        (``npvae.save``, atomically), so the file always holds the best epoch's parameters.
    history : the records of a resumed run, so that its best epoch so far counts.
    After training, ``best_epoch`` and ``best_loss`` name the best epoch, and ``stopped_epoch``
    the epoch it stopped at (None if it did not stop early).
    """

    needs_validation = True

    def __init__(self, patience=None, best_path=None, history=()):
        self.patience = None if patience is None else checks.positive_int(patience, "patience")
        self.best_path = best_path
        past = [(r["val_loss"], r["epoch"]) for r in history if "val_loss" in r]
        self.best_loss, self.best_epoch = min(past) if past else (math.inf, 0)
        self.stopped_epoch = None

    def __call__(self, epoch, record, model):
        if record["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch = record["val_loss"], epoch
            if self.best_path is not None:
                from .checkpoint import save

                save(self.best_path, model, history=None,
                     extra={"best_epoch": epoch, "best_val_loss": record["val_loss"]})
        if self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False


def _training_data(model, x, y, x_val, y_val, binarize, val_binarize_seed):
    """The run's arrays, checked against the model (labels for a CVAE only)."""
    unit = model.config.likelihood == "bernoulli" or binarize is not None
    x = checks.as_batch(x, model.input_dim, model.dtype, "x_train", unit)
    if binarize == "static" and not ((x == 0) | (x == 1)).all():
        raise ValueError("binarize='static' needs binary (0/1) data: binarize it once first, "
                         "e.g. x = npvae.run.data.binarize(x, rng), or use binarize='dynamic'.")
    y = _labels(model, y, len(x), "y")
    if x_val is not None:
        x_val = checks.as_batch(x_val, model.input_dim, model.dtype, "x_val", unit)
        y_val = _labels(model, y_val, len(x_val), "y_val")
        if binarize == "dynamic":
            x_val = data.binarize(x_val, np.random.default_rng(val_binarize_seed))
    return TrainingData(x, y, x_val, y_val)


def _discriminative_settings(model, s, arrays):
    """Refuse the ELBO's settings for a classifier; its validation: the cross-entropy."""
    if s.beta != 1 or s.warmup_epochs or s.objective != "elbo" or s.k != 1 or s.free_bits:
        raise ValueError(f"a {type(model).__name__} has no ELBO: leave beta, warmup_epochs, "
                         f"objective, k and free_bits at their defaults.")

    def validate():  # the record's val_loss and val_recon: the mean cross-entropy
        ce = float(model.cross_entropy(arrays.x_val, arrays.y_val).mean())
        return {"loss": ce, "elbo": -ce, "recon": ce, "kl": 0.0}
    return (lambda: None) if arrays.x_val is None else validate


def _labels(model, y, n, name):
    """Labels for a CVAE, checked; None for a VAE. A mismatch is a TypeError naming the fix."""
    if model.conditional and y is None:
        raise TypeError(f"a CVAE trains on labels: pass {name}=..., (N,) ints in "
                        f"[0, {model.n_classes}).")
    if not model.conditional and y is not None:
        raise TypeError(f"{name} is for a conditional model (npvae.CVAE); a VAE takes no labels.")
    if y is not None and getattr(model, "partial_labels", False):  # -1: unlabelled (M2)
        return model.check_labels(y, n)
    return None if y is None else as_labels(y, model.n_classes, n)


def _train_epoch(model, optimizer, arrays, settings, rng, run, position, stop, line):
    """The steps of one epoch, from position.step on: returns the position at its end."""
    sums, steps, n = position.sums, position.steps, len(arrays.x)
    started = time.perf_counter()
    for step, index in minibatches(n, settings.batch_size, seed=position.shuffle_seed,
                                   epoch=position.epoch, start=position.step):
        xb = arrays.x[index]  # (B, D)
        if settings.binarize == "dynamic":
            xb = data.binarize(xb, rng)
        beta_t = warmup_beta(position.epoch * steps + step, steps, settings.beta,
                             settings.warmup_epochs)
        try:
            stats = train_step(model, optimizer, xb, None if arrays.y is None else arrays.y[index],
                               beta=beta_t, rng=rng, objective=settings.objective, k=settings.k,
                               free_bits=settings.free_bits)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(_divergence_message(
                str(err), position.epoch, step, steps, optimizer, settings, run,
                model)) from None
        for key in ("loss", "recon", "kl"):
            sums[key] += stats[key] * len(xb)
        sums["beta"] = beta_t
        sums["seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        position.step = step + 1
        line.update(position.epoch, settings.epochs, step + 1, steps,
                    sums["loss"] / min(n, (step + 1) * settings.batch_size))
        if stop.requested and step + 1 < steps:
            line.clear()
            run.interrupt(position)
    line.clear()
    return position


def _checked_record(model, position, n, validate, run, settings, lr):
    """The epoch's record, with its validation loss. A diverged model (non-finite or
    overflowing weights, a non-finite validation loss) is refused here, before it can be saved
    over the last good checkpoint."""
    bad = runs.overflowing("value", model.params)
    if not bad:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked below
            record = dict(_record(position, n, validate()), lr=float(lr))  # lr may change
        if not np.isfinite(record.get("val_loss", 0.0)):
            bad = f"the validation loss is {record['val_loss']}"
    if bad:
        raise NonFiniteLossError(
            f"training diverged in epoch {position.epoch + 1}: {bad}. The epoch is not saved."
            f"{run.kept_checkpoint()} The likely cause is {_likely_cause(settings, lr, model)}.")
    return record


def _divergence_message(what, epoch, step, steps, optimizer, settings, run, model):
    """Where training diverged, what went wrong, the likely cause, and the checkpoint kept."""
    return (f"training diverged at epoch {epoch + 1}, step {step + 1} of {steps}: {what}. "
            f"The step was not applied. The likely cause is "
            f"{_likely_cause(settings, optimizer.lr, model)}.{run.kept_checkpoint()}")


# A fixed decoder σ below this makes the Gaussian NLL's gradient, which scales as 1/σ², the
# likely cause of a divergence (σ = 1e-5 trains a small model; 1e-10 overflows at the 1st step).
TINY_SIGMA = 1e-6


def _likely_cause(settings, lr, model):
    """What most likely made training diverge, and the flag that fixes it."""
    if max(settings.beta, settings.free_bits) > 1e6:  # a KL weight or floor too large
        return (f"a KL weight too large (beta = {settings.beta:g}, free bits = "
                f"{settings.free_bits:g}): try --beta 1 and --free-bits 0 or a few nats")
    config = getattr(model, "config", None)
    sigma = getattr(config, "sigma", 1.0)
    if getattr(config, "likelihood", None) == "gaussian" and sigma < TINY_SIGMA:
        return (f"the decoder's σ too small (σ = {sigma:g}: the Gaussian NLL and its gradient "
                f"scale as 1/σ² = {sigma ** -2.0:.3g}): train a new run with a larger --sigma "
                f"(e.g. 0.1) or --likelihood gaussian-learned")
    return (f"a learning rate too high (lr = {lr:g}): try a lower one, e.g. "
            f"--lr {min(lr / 10, 1e-3):g} (npvae train --resume RUN --lr {min(lr / 10, 1e-3):g} "
            f"continues from the last checkpoint with it)")


def _record(position, n, val):
    """The history entry of a finished epoch (with the validation -ELBO ``val``, if any)."""
    sums = position.sums
    record = {"epoch": position.epoch + 1, "loss": sums["loss"] / n,
              "recon": sums["recon"] / n, "kl": sums["kl"] / n, "beta": sums["beta"],
              "seconds": sums["seconds"],
              "examples_per_s": n / sums["seconds"] if sums["seconds"] > 0 else float("inf")}
    if val is not None:
        record.update(val_loss=val["loss"], val_recon=val["recon"], val_kl=val["kl"])
    return record


def _epoch_line(r, epochs):
    width = len(str(epochs))
    line = (f"epoch {r['epoch']:{width}d}/{epochs}  loss {r['loss']:.3f}  recon {r['recon']:.3f}"
            f"  kl {r['kl']:.3f}")
    if "val_loss" in r:
        line += f"  val {r['val_loss']:.3f}"
    return line + (f"  beta {r['beta']:.3g}  {r['seconds']:.1f} s"
                   f"  {r['examples_per_s']:.0f} ex/s")


