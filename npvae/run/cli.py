"""The ``npvae`` command line: train, evaluate, sample, plot, gradcheck.

Every error a user can cause ends in a one-line message, ``npvae <command>: error: ...``, and
exit code 2, never a traceback (``--verbose`` shows it). Ctrl-C during ``npvae train`` saves the
state after the current step and exits with code 130, saying how to resume.
"""

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..core.errors import NpvaeError
from ..core.vae import DEFAULT_HIDDEN_DIMS, DEFAULT_LATENT_DIM

EXAMPLES = """examples:
  npvae train --dataset fashion-mnist --epochs 10 --out runs/fashion
  npvae train --dataset mnist --epochs 10 --latent-dim 20 --hidden 400 --likelihood bernoulli \\
              --binarize dynamic --out runs/mnist
  npvae train --resume runs/mnist --epochs 20     continue a stopped (or finished) run
  npvae evaluate runs/mnist --k 5000              test ELBO, log p(x), active units, KL per dim
  npvae sample runs/mnist --n 64 --out samples.png
  npvae train --conditional --out runs/cvae       a CVAE, conditioned on the labels
  npvae sample runs/cvae --label 3                draw that class
  npvae train --labels 100 --out runs/m2          M2, semi-supervised: 100 labels (10 per class)
                                                  kept, the others hidden
  npvae plot runs/mnist --out figures/            every figure that applies to a checkpoint
  npvae gradcheck                 prove every hand-written gradient against finite differences
"""

TRAIN_EXAMPLES = """examples:
  npvae train --dataset fashion-mnist --epochs 10 --out runs/fashion
  npvae train --dataset mnist --hidden 512 256 --latent-dim 2 --out runs/mnist-2d
  npvae train --hidden 0 --likelihood gaussian --binarize none --out runs/linear
  npvae train --conditional --latent-dim 2 --out runs/cvae   a CVAE p(x|z, y) on the labels
  npvae train --labels 100 --out runs/m2     M2 (semi-supervised VAE) with 100 labels, 10 per
                                             class, the others hidden; summary: its accuracy
  npvae train --data my_images.npz --out runs/mine   your own data: x (N, D) or (N, H, W) in [0, 1]
  npvae train --resume runs/fashion               after Ctrl-C: continue, bit for bit
  npvae train --resume runs/fashion --epochs 30   train a finished run for longer

The run folder (--out) receives checkpoint.npz (after every epoch, and on Ctrl-C),
history.json and history.csv (one record per epoch) and summary.json (the test numbers, also printed).
Data: the train split, minus --val examples held out for validation; the test split for the
summary. Without the MNIST training images (offline, say), MNIST falls back to the test split
bundled with npvae, 8,000 images to train on and 2,000 to test on, and says so (--no-fallback
makes that an error). --data FILE trains on your own .npy, or .npz with x (and optionally y),
holding out a fifth for testing. --hidden 0 (or --hidden with no sizes) gives a linear VAE.
--labels N trains M2 (npvae.SemiSupervisedVAE) on every training image, keeping N of their
labels, balanced across the classes and drawn by --seed, and hiding the others (y = -1); the
labelled images are repeated to --labelled-share of the unlabelled ones, and the summary
reports the test accuracy of its classifier q(y|x).
"""

# The settings of a training run, with their defaults. They are stored in the checkpoint, so
# that --resume continues with the same ones; only --epochs may change on resume.
TRAIN_DEFAULTS = {
    "dataset": "mnist", "epochs": 10, "batch_size": 128, "lr": 1e-3,
    "latent_dim": DEFAULT_LATENT_DIM, "hidden": list(DEFAULT_HIDDEN_DIMS),
    "likelihood": "bernoulli", "activation": "relu", "binarize": None, "beta": 1.0,
    "warmup": 0.0, "objective": "elbo", "k": 1, "free_bits": 0.0, "seed": 0, "val": None,
    "conditional": False, "textbook": False, "source": None, "sigma": 1.0, "latent_dims": None,
    "labels": None, "alpha": None, "labelled_share": None,
}
# "val": None is min(5,000, a tenth of the training examples); "source": None is "files" (the
# data set's IDX files) or, when MNIST's training images are missing, "bundled" (see
# npvae.run.data.load_run_data); --data sets a file's path. Both are saved as they were resolved.
DEFAULT_VAL = 5000
CHANGEABLE_ON_RESUME = ("epochs", "lr")  # a new --lr is recorded in each epoch's record
FLAG_NAMES = {"source": "--data"}  # the settings whose flag is not --<name>
# Settings added after the first release, and what a run saved without them had.
ADDED_SETTINGS = {"conditional": False, "textbook": False, "source": "files", "sigma": 1.0,
                  "latent_dims": None, "labels": None, "alpha": None, "labelled_share": None}
# M2 (--labels), as docs/semi_supervised.md sections 4 and 5 train it: the weight alpha of the
# labelled cross-entropy, the labelled images repeated to a quarter of the unlabelled ones, and
# 200 hidden units (the encoder's, the decoder's and the classifier's: each unlabelled image
# costs C passes of the CVAE). "alpha" and "labelled_share" are None in a run without --labels.
M2_DEFAULTS = {"alpha": 200.0, "labelled_share": 0.25, "hidden": [200]}
TEST_BINARIZE_SEED = 0  # the test set is binarized once, the same way for every run
PLANT_NAMES = ("kl-half", "variance-as-std", "clamp-mask", "bias-sign", "kl-missing-1/B")


class UsageError(NpvaeError, ValueError):
    """A bad combination of flags, or an output folder that cannot be written."""


# --------------------------------------------------------------------------- flag types


# npvae evaluate's importance samples per example: about 45 s over the 10,000 MNIST test images
# on a 2-core VM (k = 5000, the estimate papers report, took 3.7 min: one flag away).
DEFAULT_EVAL_K = 1000


def _number(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer ≥ 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
nonnegative_float = _number(float, lambda v: v >= 0, "a number ≥ 0")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``npvae train: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------- train


def _train_settings(args):
    """The run's settings: the defaults (or, with --resume, the saved ones) and the flags."""
    from . import checkpoint
    from . import runs

    given = {key: getattr(args, key) for key in TRAIN_DEFAULTS if getattr(args, key) is not None}
    if "hidden" in given:
        given["hidden"] = _hidden_sizes(given["hidden"])
    if "source" in given:  # stored as an absolute path: evaluate and plot may run elsewhere
        given["source"] = os.path.abspath(os.path.expanduser(given["source"]))
    if "sigma" in given and given.get("likelihood", TRAIN_DEFAULTS["likelihood"]) != "gaussian":
        raise UsageError("--sigma is the fixed σ of --likelihood gaussian; add that flag (the "
                         "bernoulli likelihood has no σ, and gaussian-learned learns its own).")
    if "latent_dims" in given and "latent_dim" in given:
        raise UsageError("--latent-dims Z1 Z2 sets both latent layers of a hierarchical VAE; "
                         "drop --latent-dim.")
    if "latent_dims" in given and (given.get("conditional") or given.get("free_bits")
                                   or given.get("objective", "elbo") != "elbo"):
        raise UsageError("--latent-dims trains a hierarchical VAE, on the ELBO only: drop "
                         "--conditional, --objective iwae and --free-bits.")
    if args.resume is None:
        settings = _m2_settings({**TRAIN_DEFAULTS, **given}, given, args)
        if settings["binarize"] is None:
            settings["binarize"] = "dynamic" if settings["likelihood"] == "bernoulli" else "none"
        return settings, {}
    resume = checkpoint.resolve(args.resume)  # the file, also when given its run folder
    if args.out is not None and Path(args.out).resolve() != resume.parent.resolve():
        raise UsageError(f"--resume {args.resume} continues in its own folder; drop "
                         f"--out {args.out} (or copy the run folder there first).")
    _, meta = checkpoint.load_with_metadata(resume)
    saved = meta.get("args")
    if isinstance(saved, dict):
        saved = {**ADDED_SETTINGS, **saved}
    if not isinstance(saved, dict) or saved.keys() != TRAIN_DEFAULTS.keys():
        raise UsageError(f"{meta['path']} was not written by npvae train, so its data and "
                         f"settings are unknown; resume it from Python with "
                         f"npvae.train(model, x, resume=...).")
    changed = [f"{_flag(key)} {_show(value)} (saved: {_show(saved[key])})"
               for key, value in given.items()
               if key not in CHANGEABLE_ON_RESUME and value != saved[key]]
    if changed:
        raise UsageError(f"--resume continues a run with its saved settings, but "
                         f"{', '.join(changed)} differ; drop those flags, or start a new run "
                         f"with another --out.")
    settings = _m2_settings({**saved, **given}, given, args)
    done = len(meta.get("history") or [])
    if settings["epochs"] == done and not (resume.parent / runs.SUMMARY_FILE).exists():
        print(f"npvae: {meta['path']} has trained its {done} epochs, but its final evaluation "
              f"did not finish (no {runs.SUMMARY_FILE}); evaluating it now.", file=sys.stderr)
        return settings, meta
    if settings["epochs"] <= done:
        raise UsageError(f"{meta['path']} has trained {done} epochs, and --epochs "
                         f"{settings['epochs']} leaves nothing to do: --epochs is the total, so "
                         f"pass more than {done} to train longer (or npvae evaluate "
                         f"{resume.parent} to evaluate it).")
    return settings, meta


def _m2_conflicts(settings, args):
    """What M2 (--labels) cannot be trained with, and why: [(flag, is it set, the reason)]."""
    return [
        ("--conditional", settings["conditional"], "M2 is a CVAE already, one that infers y "
                                                   "where it is hidden"),
        ("--latent-dims", settings["latent_dims"], "M2 has one layer of latents"),
        (f"--objective {settings['objective']}", settings["objective"] != "elbo",
         "M2 trains on the ELBO only"),
        ("--free-bits", settings["free_bits"], "M2 trains on the ELBO only"),
        ("--early-stop", args.early_stop is not None, "it would choose the epoch by the "
                                                      "validation images' labels, beyond the N "
                                                      "kept"),
        ("--save-best", args.save_best, "it would choose the model by the validation images' "
                                        "labels, beyond the N kept"),
    ]


def _m2_settings(settings, given, args):
    """Refuse M2's flags without --labels, and --labels with a flag M2 cannot train with; a new
    M2 run gets the M2_DEFAULTS its flags leave open. Returns the settings."""
    if not settings["labels"]:
        extra = [_flag(key) for key in ("alpha", "labelled_share") if key in given]
        if extra:
            raise UsageError(f"{' and '.join(extra)} {'set' if len(extra) > 1 else 'sets'} "
                             f"M2, the semi-supervised VAE; add --labels N to train it (or "
                             f"drop {' and '.join(extra)}).")
        return settings
    conflicts = [f"{flag} ({why})" for flag, on, why in _m2_conflicts(settings, args) if on]
    if conflicts:
        raise UsageError(f"--labels {settings['labels']} trains M2, the semi-supervised VAE, "
                         f"which does not go with {'; nor with '.join(conflicts)}: drop "
                         f"{'that flag' if len(conflicts) == 1 else 'those flags'}.")
    if args.resume is None:
        settings.update({key: value.copy() if isinstance(value, list) else value
                         for key, value in M2_DEFAULTS.items() if key not in given})
    return settings


def _show(value):
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _flag(key):
    """The flag of a saved setting: "--batch-size" for batch_size, "--data" for source."""
    return FLAG_NAMES.get(key, "--" + key.replace("_", "-"))


def _hidden_sizes(sizes):
    """--hidden 400 / 512 256 / 0 or nothing (a linear VAE)."""
    if sizes in ([], [0]):
        return []
    if any(h <= 0 for h in sizes):
        raise UsageError(f"--hidden takes positive layer sizes, got {_show(sizes)}; use "
                         f"--hidden 0 alone for a linear VAE.")
    return list(sizes)


def _out_dir(args, settings):
    """The run folder (not yet made: ``runs.folder_lock`` makes it and holds it)."""
    from . import checkpoint

    if args.resume is not None:
        return checkpoint.resolve(args.resume).parent
    source = settings.get("source")  # a user's file: its run is named after the file
    name = Path(source).stem if source not in (None, "files", "test-split", "bundled") else (
        settings["dataset"])
    if args.out is not None and not args.out.strip():
        raise UsageError("--out is empty; name the run folder, e.g. --out runs/mine (or drop "
                         f"--out for runs/{name}).")
    return Path(args.out or Path("runs") / name)


def _check_out_dir(args, out):
    """Refuse to start a new run over an old one unless --overwrite; made and locked already."""
    from . import checkpoint

    if args.resume is None and (out / checkpoint.FILENAME).exists() and not args.overwrite:
        raise UsageError(f"{out} already holds a run (checkpoint.npz); continue it with "
                         f"--resume {out}, choose another --out, or pass --overwrite.")


def _run_data(settings, data_dir, fallback):
    """The run's data (``npvae.run.data.RunData``) as its settings describe it; resolves
    settings["source"] (the fallback to the bundled MNIST split, say) so that it is saved."""
    from . import data

    run = data.load_run_data(settings["dataset"], data_dir, settings["source"] or "files",
                             fallback=fallback, seed=settings["seed"])
    settings["source"] = run.source
    return run


def _training_data(settings, run):
    """(x_train, y_train, x_val, y_val) as ``train`` gets them, from the seeded split of the
    run's training examples; x_val and y_val are None with --val 0. Resolves settings["val"]."""
    from . import data

    x, y = run.x_train, run.y_train
    if settings["val"] is None:
        settings["val"] = min(DEFAULT_VAL, len(x) // 10)
    if settings["val"] >= len(x):
        raise UsageError(f"--val {settings['val']} leaves no training examples: the "
                         f"{run.origin} data has {len(x)}; pass a smaller --val.")
    split_seed, binarize_seed = np.random.SeedSequence([settings["seed"], 1]).spawn(2)
    x_train, y_train, x_val, y_val = data.train_val_split(
        x, np.zeros(len(x)) if y is None else y, settings["val"],
        np.random.default_rng(split_seed))
    if y is None:
        y_train = y_val = None
    if settings["binarize"] == "static":
        rng = np.random.default_rng(binarize_seed)
        x_train, x_val = data.binarize(x_train, rng), data.binarize(x_val, rng)
    if not settings["val"]:
        x_val = y_val = None
    return x_train, y_train, x_val, y_val


def _test_data(x, y, binarize, n=None):
    """The first ``n`` test examples (all if None) and their labels, the examples binarized
    once with a fixed seed unless the run used no binarization."""
    from . import data

    x, y = x[:n], None if y is None else y[:n]
    if binarize not in (None, "none"):
        x = data.binarize(x, np.random.default_rng(TEST_BINARIZE_SEED))
    return x, y


def _labels_if(model, y):
    """The labels a model's calls need: y for a CVAE, None for a VAE."""
    return y if model.conditional else None


def _new_model(settings, run):
    """The VAE (or, with --conditional, the CVAE on the run's labels; with --labels, M2) the
    settings describe, seeded by --seed."""
    from ..models.cvae import CVAE
    from ..models.hvae import HVAE
    from ..models.m2 import SemiSupervisedVAE
    from ..core.vae import VAE

    input_dim = run.x_train.shape[1]
    shape = (settings["hidden"], settings["latent_dim"], settings["likelihood"],
             settings["activation"])
    seed = np.random.default_rng(np.random.SeedSequence([settings["seed"], 0]))
    if settings["latent_dims"]:
        return HVAE(input_dim, settings["hidden"], tuple(settings["latent_dims"]), *shape[2:],
                    sigma=settings["sigma"], seed=seed)
    if settings["labels"]:  # M2: its classifier q(y|x) has the hidden layers of the encoder
        return SemiSupervisedVAE(input_dim, _n_classes(run, f"--labels {settings['labels']}"),
                                 *shape, sigma=settings["sigma"], seed=seed,
                                 classifier_dims=settings["hidden"], alpha=settings["alpha"])
    if not settings["conditional"]:
        return VAE(input_dim, *shape, sigma=settings["sigma"], seed=seed)
    return CVAE(input_dim, _n_classes(run, "--conditional"), *shape, sigma=settings["sigma"],
                seed=seed)


def _n_classes(run, flag):
    """The number of classes C of a model on the run's labels, which ``flag`` asks for: 10 for
    MNIST and Fashion-MNIST, else one past the largest label (at least 2)."""
    from .data import N_CLASSES

    if run.y_train is None:
        raise UsageError(f"{flag} trains on labels, but {run.origin} has none; save them "
                         f"beside x, np.savez(path, x=x, y=labels).")
    if run.source in ("files", "test-split", "bundled"):
        return N_CLASSES
    n_classes = max(2, int(run.y_train.max()) + 1, int(run.y_test.max()) + 1)
    n_labelled = len(run.y_train) + len(run.y_test)
    if n_classes > n_labelled:  # a class per label value 0 to C-1: most would have no example
        raise UsageError(f"{flag}: the labels of {run.origin} run up to {n_classes - 1:,}, "
                         f"so the model would have {n_classes:,} classes (one input each, 0 to "
                         f"C-1) for {n_labelled:,} examples; renumber them 0 to C-1, e.g. "
                         f"y = np.unique(y, return_inverse=True)[1].")
    return n_classes


def _keep_labels(settings, x, y, n_classes):
    """M2's training data: ``settings["labels"]`` of the labels y kept, balanced across the
    classes and drawn by --seed (the same on --resume), the others hidden (-1), and the
    labelled examples repeated to ``labelled_share`` of the unlabelled ones.
    Returns x (N', D), y (N',) and what was kept: {"n", "per_class", "repeated"}."""
    from ..study.semi_supervised import hide_labels, oversample_labelled

    n = settings["labels"]
    if n > len(y):
        raise UsageError(f"--labels {n} asks for more labels than the {len(y):,} training "
                         f"examples have (--val {settings['val']} held out for validation); "
                         f"pass at most {len(y)}.")
    if n < n_classes:
        raise UsageError(f"--labels {n} is fewer than the {n_classes} classes: M2 keeps the "
                         f"labels balanced, at least one per class; pass --labels {n_classes} "
                         f"or more.")
    try:
        y = hide_labels(y.astype(np.int64), n, np.random.default_rng(
            np.random.SeedSequence([settings["seed"], 2])), n_classes)
    except ValueError as err:  # a class with fewer examples than its share of the labels
        raise UsageError(f"--labels {n}: {err}") from None
    labelled = int((y >= 0).sum())
    repeated = max(1, round(settings["labelled_share"] * (len(y) - labelled) / labelled))
    kept = {"n": labelled, "per_class": np.bincount(y[y >= 0], minlength=n_classes).tolist(),
            "repeated": repeated}
    return (*oversample_labelled(x, y, repeated), kept)


def cmd_train(args):
    from . import runs

    settings, meta = _train_settings(args)
    out = _out_dir(args, settings)
    with runs.folder_lock(out):  # a second run into the same folder is refused
        _check_out_dir(args, out)
        return _train_in(out, args, settings, meta)


def _train_in(out, args, settings, meta):
    """npvae train's work, in the locked run folder ``out``: train, evaluate, summarise."""
    from . import checkpoint
    from . import runs
    from .training import train

    data_dir = _data_dir(args) or meta.get("data_dir")
    run = _run_data(settings, data_dir, fallback=not args.no_fallback)
    x_train, y_train, x_val, y_val = _training_data(settings, run)
    model = _new_model(settings, run)
    kept = None
    if settings["labels"]:  # M2: N labels kept, the others hidden; the labelled repeated
        x_train, y_train, kept = _keep_labels(settings, x_train, y_train, model.n_classes)
    verbose = not args.quiet
    if verbose:
        print(_start_line(run, model, settings, x_train, x_val, kept, out), flush=True)
    if args.resume is None:  # a new run (--overwrite, say): no old summary or history beside it
        runs.clear_outputs(out)
    stopper = _early_stopping(args, x_val, out, meta)
    history = train(
        model, x_train, y=_labels_if(model, y_train), epochs=settings["epochs"],
        batch_size=settings["batch_size"], lr=settings["lr"], x_val=x_val,
        y_val=None if x_val is None else _labels_if(model, y_val), beta=settings["beta"],
        warmup_epochs=settings["warmup"],
        binarize=None if settings["binarize"] in ("static", "none") else settings["binarize"],
        objective=settings["objective"], k=settings["k"], free_bits=settings["free_bits"],
        resume=meta["path"] if args.resume else None, out_dir=out, verbose=verbose,
        val_seed=settings["seed"], fused=not settings["textbook"],
        hooks=() if stopper is None else (stopper,),
        extra={"dataset": settings["dataset"], "data_dir": data_dir, "args": settings,
               "source": settings["source"], "seed": settings["seed"], "origin": run.origin,
               "data_name": run.name,
               "image_shape": None if run.image_shape is None else list(run.image_shape),
               "test_fingerprint": runs.data_fingerprint(run.x_test, run.y_test)})
    try:
        summary = _final_evaluation(model, run, settings, history, args.eval_k)
    except KeyboardInterrupt:
        raise runs.TrainingInterrupted(
            f"interrupted in the final evaluation; the trained run is saved in {out}, and "
            f"npvae train --resume {out} evaluates it and writes {runs.SUMMARY_FILE}.",
            out / checkpoint.FILENAME, len(history), history=history) from None
    if kept is not None:
        summary["labels"] = kept
    if stopper is not None:
        summary.update(best_epoch=stopper.best_epoch, best_val_loss=stopper.best_loss,
                       stopped_early=stopper.stopped_epoch is not None)
    checkpoint.save_json(out / runs.SUMMARY_FILE, summary)
    print(_summary_text(summary, out))
    return 0


def _start_line(run, model, settings, x_train, x_val, kept, out):
    """The line npvae train starts with: the data, the model, the run folder."""
    dims = "-".join(map(str, [model.input_dim, *settings["hidden"],
                              *getattr(model, "latent_dims", (model.latent_dim,))]))
    n_train = len(x_train)
    if kept is not None:  # M2: the distinct images, and the labels kept of them
        n_train -= kept["n"] * (kept["repeated"] - 1)
        kind = (f"M2 (semi-supervised VAE) with {kept['n']} labels ("
                f"{_per_class(kept['per_class'])}) and {n_train - kept['n']} hidden, the "
                f"labelled repeated ×{kept['repeated']} per epoch, alpha {settings['alpha']:g}, "
                f"classifier {'-'.join(map(str, [model.input_dim, *settings['hidden']]))}-"
                f"{model.n_classes}; ")
    else:
        kind = "CVAE on the labels, " if model.conditional else ""
    return (f"{run.origin}: {n_train} training, {0 if x_val is None else len(x_val)} "
            f"validation examples; {kind}model {dims}, {settings['likelihood']}; "
            f"run folder {out}")


def _per_class(counts):
    """"10 per class", or "9 to 10 per class" when N is not a multiple of C."""
    low, high = min(counts), max(counts)
    return f"{low} per class" if low == high else f"{low} to {high} per class"


def _early_stopping(args, x_val, out, meta):
    """The EarlyStopping hook that --early-stop and --save-best ask for, or None."""
    from . import runs
    from .training import EarlyStopping

    if args.early_stop is None and not args.save_best:
        return None
    if x_val is None:
        raise UsageError("--early-stop and --save-best follow the validation loss, and this run "
                         "has no validation examples (--val 0); pass --val N with N > 0.")
    return EarlyStopping(args.early_stop, out / runs.BEST_FILE if args.save_best else None,
                         history=meta.get("history") or [])


def _final_evaluation(model, run, settings, history, eval_k):
    """The summary of a trained run: its timings and the test ELBO (and IWAE bound)."""
    from ..study import evaluate

    x_test, y_test = _test_data(run.x_test, run.y_test, settings["binarize"])
    rng = np.random.default_rng(0)  # the evaluation noise, as npvae evaluate's default seed
    y_test = _labels_if(model, y_test)
    if eval_k:
        test = evaluate.evaluate(model, x_test, k=eval_k, rng=rng, y=y_test)
    else:
        test = {"n": len(x_test), **evaluate.elbo(model, x_test, rng=rng, y=y_test)}
    test.update(_classifier_numbers(model, x_test, y_test))
    seconds = [r["seconds"] for r in history]
    return {"dataset": settings["dataset"], "data": run.name, "epochs": len(history),
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
            "examples_per_s": (float(np.mean([r["examples_per_s"] for r in history]))
                               if history else None),
            "config": model.config.to_dict(), "settings": settings, "test": test}


# Why the summary and npvae evaluate give M2's bounds given the true label, not log p(x).
M2_NOTE = ("M2's ELBO and log p(x|y) are its CVAE part's, given each test image's true label; "
           "log p(x) = log Σ_y p(x|y) p(y) is not computed (C times the cost)")


def _classifier_numbers(model, x, y):
    """For M2 (a semi-supervised VAE), the test accuracy of its classifier q(y|x), argmax
    against the labels y: {"accuracy": float in [0, 1]}; {} for every other model."""
    from ..study import supports
    from ..study.semi_supervised import accuracy

    if not supports.is_semi_supervised(model):
        return {}
    return {"accuracy": accuracy(model, x, y)}


def _density_note(config):
    """For a Gaussian likelihood, why its ELBO and log p(x) may be positive, and its sigma."""
    if config["likelihood"] == "bernoulli":
        return None
    scale = (f"sigma = {config['sigma']:g}, variance c = {config['sigma'] ** 2:g}"
             if config["likelihood"] == "gaussian" else "a variance learned for every pixel")
    return (f"note: a Gaussian likelihood ({scale}) is a density over real values, not a "
            f"probability: it exceeds 1 where it is narrow, so the ELBO and log p(x) may be "
            f"positive")


def _summary_text(s, out):
    t = s["test"]
    lines = []
    if s["epochs"]:
        lines.append(f"trained {s['epochs']} epochs on {s.get('data', s['dataset'])}: "
                     f"{s['seconds_per_epoch']:.1f} s per epoch, "
                     f"{s['examples_per_s']:.0f} examples/s")
    if "accuracy" in t:
        lines.append(f"test accuracy  {t['accuracy']:9.2%} of M2's classifier q(y|x) "
                     f"(trained with {s['labels']['n']} labels; {t['n']} test examples)")
    lines.append(f"test ELBO      {t['elbo']:9.2f} nats per example (recon {t['recon']:.2f}, "
                 f"KL {t['kl']:.2f}; {t['n']} test examples)")
    if "log_likelihood" in t:
        given = "|y" if s["config"].get("n_classes") else ""
        lines.append(f"test log p(x{given}) ≥ {t['log_likelihood']:8.2f} nats (IWAE bound, "
                     f"k = {t['k']}; npvae evaluate {out} --k 5000 for the full estimate)")
    if "accuracy" in t:
        lines.append(f"note: {M2_NOTE}")
    if "best_epoch" in s:
        lines.append(f"lowest validation loss {s['best_val_loss']:.2f} at epoch "
                     f"{s['best_epoch']}" + (f"; stopped early after epoch {s['epochs']}"
                                             if s["stopped_early"] else "")
                     + (f"; that model is in {out / 'best.npz'}"
                        if (out / "best.npz").exists() else ""))
    if _density_note(s["config"]):
        lines.append(_density_note(s["config"]))
    lines.append(f"wrote {out / 'checkpoint.npz'}, history.json, history.csv, summary.json")
    return "\n".join(lines)


# --------------------------------------------------------------------------- evaluate, sample


def _load(path):
    """(model, metadata) of a checkpoint file or run folder."""
    from . import checkpoint

    return checkpoint.load_with_metadata(path)


def _run_test_data(args, meta):
    """The test examples of the run a checkpoint comes from (its held-out fifth, for a run on
    a single split), or of --dataset when it names another data set: (origin, (x, y)), origin
    naming the data in words. The run's own data is checked against its fingerprint."""
    from . import runs

    origin, x, y = runs.run_test_data(meta, args.dataset, _data_dir(args))
    return origin, (x, y)


def _data_dir(args):
    """--data-dir as an absolute path, or None; a folder that does not exist is an error (not
    a reason to look elsewhere)."""
    if args.data_dir is None:
        return None
    folder = Path(args.data_dir).expanduser()
    if not folder.is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder; pass the folder that "
                         f"holds the IDX files (or drop --data-dir to search the usual places).")
    return os.path.abspath(folder)


def cmd_evaluate(args):
    from ..study import evaluate

    model, meta = _load(args.checkpoint)
    run = meta.get("args") or {}
    binarize = run.get("binarize", "none") if args.binarize is None else args.binarize
    origin, (x, y) = _run_test_data(args, meta)
    x, y = _test_data(x, y, binarize, args.n)
    from .runs import EtaReport

    result = evaluate.evaluate(model, x, k=args.k, rng=np.random.default_rng(args.seed),
                               batch_size=args.batch_size, y=_labels_if(model, y),
                               progress=EtaReport(f"npvae evaluate: log p(x), k = {args.k:,} "
                                                  f"samples per example"))
    c = model.config
    dims = "-".join(map(str, [c.input_dim, *c.hidden_dims, *getattr(
        model, "latent_dims", (c.latent_dim,))]))
    epochs = len(meta.get("history") or [])
    rows = [
        ("checkpoint", f"{meta['path']} ({_kind(model)}{dims}, "
                       f"{c.likelihood}, {c.activation}; {epochs} epochs)"),
        ("data", f"{origin} test, {result['n']} examples"
                 + ("" if binarize in (None, "none") else ", binarized")),
    ]
    if "elbo" not in result:  # an Autoencoder: its reconstruction error is all it has
        rows.append(("recon error", f"{result['recon']:.2f} nats per example  (-log p(x | "
                                    f"dec(enc(x))); an Autoencoder has no ELBO, log p(x) or KL)"))
        print("\n".join(f"{name:13s} {text}" for name, text in rows))
        return 0
    kl = result.get("kl_per_dim")
    rows += [
        ("ELBO", f"{result['elbo']:.2f} nats  (recon {result['recon']:.2f}, "
                 f"KL {result['kl']:.2f})"),
        ("log p(x|y)" if model.conditional else "log p(x)",
         f"{result['log_likelihood']:.2f} ± {result['log_likelihood_se']:.2f} nats  (IWAE, "
         f"k = {result['k']}; ± one standard error)"),
        ("active units", f"{result['active_units']} of {model.latent_dim}  "
                         f"(Var_x E[z|x] > {evaluate.ACTIVE_THRESHOLD})"),
        ("KL per dim", "  ".join(f"{v:.2f}" for v in kl) if kl is not None else
         f"(none: a {type(model).__name__}'s q(z|x) is not diagonal, so its KL does not "
         f"split over the dimensions)"),
    ]
    if hasattr(model, "latent_dims"):  # a hierarchical VAE: each layer on its own
        rows[-2:] = _layer_rows(model, x, np.random.default_rng(args.seed))
    m2 = _classifier_numbers(model, x, y)
    if m2:
        rows[2:2] = [("accuracy", f"{m2['accuracy']:.2%}  (M2's classifier q(y|x), its "
                                  f"argmax against the test labels)")]
        rows.append(("", f"note: {M2_NOTE}"))
    if _density_note(c.to_dict()):
        rows.append(("", _density_note(c.to_dict())))
    print("\n".join(f"{name:13s} {text}" for name, text in rows))
    return 0


def _kind(model):
    """The model's kind before its layer sizes in evaluate's first row, "" for a VAE."""
    name = type(model).__name__
    return "" if name == "VAE" else f"{name}, "


def _layer_rows(model, x, rng):
    """The evaluate rows of an HVAE: each layer's share of the KL and its active units."""
    from ..study import evaluate

    kl1, kl2 = model.kl_per_layer(x[:1000], rng=rng)
    active = [int((np.var(mu, axis=0) > evaluate.ACTIVE_THRESHOLD).sum())
              for mu, _ in model.encode_layers(x[:1000])]
    return [("KL per layer", f"z₁ {kl1:.2f}, z₂ {kl2:.2f} nats (z₁'s sampled: log q − log p)"),
            ("active units", f"z₁ {active[0]} of {model.latent_dims[0]}, z₂ {active[1]} of "
                             f"{model.latent_dims[1]}  (Var_x E[z|x] > "
                             f"{evaluate.ACTIVE_THRESHOLD})")]


def cmd_sample(args):
    from . import plots

    out = _sample_file(args.out, args.draw)
    model, meta = _load(args.checkpoint)
    shape = plots.saved_image_shape(meta, model.input_dim)
    if shape is None:
        raise UsageError(f"this model's inputs have {model.input_dim} values, not a square "
                         f"image, and the checkpoint records no image shape (the data's x was "
                         f"saved as vectors); sample from it in Python with model.sample(n), "
                         f"or save x as (N, H, W) images and train again.")
    if type(model).__name__ == "Autoencoder":
        raise UsageError("an Autoencoder has no prior p(z) to sample from; its decoder was "
                         "trained on codes of images only (npvae plot draws what applies).")
    context = plots.run_label(meta.get("data_name") or meta.get("dataset"),
                              len(meta.get("history") or []) or None,
                              getattr(model, "latent_dims", model.latent_dim))
    with plots.image_shape(shape):
        fig = plots.prior_samples(model, args.n, ncols=_sample_columns(model, args),
                                  rng=np.random.default_rng(args.seed), context=context,
                                  labels=_sample_labels(model, args.label, args.n),
                                  draw=args.draw)
    try:
        path = plots.savefig(fig, out)
    except OSError as exc:
        if isinstance(exc, NpvaeError):  # a WriteError names the file, the cause and the fix
            raise
        raise UsageError(f"cannot write {out} ({exc.strerror or exc}); choose another "
                         f"--out.") from exc
    print(f"wrote {path}")
    return 0


def _sample_file(out, draw=False):
    """The PNG ``npvae sample --out`` writes: ``out``, or for a folder (one that exists, or a
    name ending in a slash) or no --out, samples.png in it (samples_draws.png with --draw, so
    that the draws never replace the means)."""
    name = "samples_draws.png" if draw else "samples.png"
    if out is None:
        return Path(name)
    if not out.strip():
        raise UsageError("--out is empty; name the PNG file (e.g. --out samples.png) or a "
                         "folder (--out figures/).")
    if out.endswith(("/", os.sep)) or Path(out).is_dir():
        return Path(out) / name
    return Path(out)


def _sample_columns(model, args):
    """Images per row: --ncols, else about √n; for a CVAE sampling every class in turn, the
    number of classes, so that each column is one class."""
    if not model.conditional or args.label is not None:
        return args.ncols or math.ceil(math.sqrt(args.n))
    C = model.n_classes
    if args.ncols is not None and args.ncols % C:
        raise UsageError(f"this CVAE's samples go through its {C} classes in turn, so --ncols "
                         f"{args.ncols} would mix classes within a column; drop --ncols (one "
                         f"class per column) or pass a multiple of {C}.")
    return args.ncols or C


def _sample_labels(model, label, n):
    """The labels of n samples: all ``label`` for a CVAE given one, else None (a VAE; for a
    CVAE, every class in turn)."""
    if label is None:
        return None
    if not model.conditional:
        raise UsageError("--label is for a conditional model (npvae train --conditional or "
                         "--labels N); this checkpoint is a VAE, which draws from p(x) without "
                         "labels.")
    if label >= model.n_classes:
        raise UsageError(f"--label {label} is not a class of this {type(model).__name__}: it "
                         f"has {model.n_classes}, 0 to {model.n_classes - 1}.")
    return np.full(n, label)


def cmd_plot(args):
    from . import plots

    out = Path(args.out)
    if not args.out.strip() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {args.out!r} is {'empty' if not args.out.strip() else 'a file'}; "
                         f"npvae plot writes several PNGs into a folder: pass a folder (new or "
                         f"existing), e.g. --out figures.")
    _, meta = _load(args.checkpoint)  # for the data folder the run was trained from
    skipped = []
    written = plots.plot_checkpoint(args.checkpoint, out, dataset=args.dataset,
                                    data_dir=_data_dir(args) or meta.get("data_dir"),
                                    seed=args.seed, skipped=skipped)
    print("\n".join([f"wrote {p}" for p in written]
                    + [f"skipped {name}: {why}" for name, why in skipped]))
    return 0


def cmd_gradcheck(args):
    import contextlib

    from ..verify import gradcheck
    from ..verify import objective_checks
    from ..verify import plants

    with plants.planted(args.plant) if args.plant else contextlib.nullcontext() as bug:
        sections = gradcheck.all_checks(seed=args.seed)
        objectives = objective_checks.objective_checks(seed=args.seed)
    failed = {"objective": [c for c in objectives if not c.ok],
              "gradient": [c for _, cs in sections for c in cs if not c.ok]}
    print(gradcheck.report(sections))
    print(objective_checks.report(objectives))
    if not args.plant:
        return 1 if any(failed.values()) else 0
    print(f"\nplanted bug {args.plant!r}: {bug}.")
    if not any(failed.values()):
        print("NOT CAUGHT: every check passed.")
        return 1
    print(f"caught by {len(failed['objective'])} objective and {len(failed['gradient'])} "
          f"gradient check(s); the clearest of each:")
    for kind, checks in failed.items():
        for c in sorted(checks, key=lambda c: -c.error / c.tol)[:3]:
            print(f"  {kind:9s} {c.name}: error {c.error:.3g} against a tolerance of "
                  f"{c.tol:.1g} ({c.error / c.tol:.3g}×)")
    return 0


# --------------------------------------------------------------------------- the parser


def _add_verbose(p):
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error")


def _checkpoint_command(sub, func, name, summary, description, data=True,
                        seed_help="seeds the draws"):
    """A subcommand that reads a CHECKPOINT (and, with ``data``, the test split)."""
    from .data import DATASETS

    p = sub.add_parser(name, help=summary, description=description)
    p.add_argument("checkpoint", help="a checkpoint .npz, or a run folder holding checkpoint.npz")
    if data:
        p.add_argument("--dataset", choices=DATASETS, help="(default: the one it was trained on)")
        p.add_argument("--data-dir", metavar="DIR", help="folder holding the IDX files")
    p.add_argument("--seed", type=nonnegative_int, default=0, help=f"{seed_help} (default: 0)")
    _add_verbose(p)
    p.set_defaults(func=func)
    return p


def build_parser():
    from .data import DATASETS
    from ..core.layers import ACTIVATIONS
    from ..core.vae import LIKELIHOODS, OBJECTIVES

    parser = _Parser(
        prog="npvae", description="A variational autoencoder in NumPy, gradients by hand.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    from .. import __version__  # the package root, loaded before any of its modules
    parser.add_argument("--version", action="version", version=f"npvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = TRAIN_DEFAULTS

    p = sub.add_parser("train", help="train a VAE on MNIST or Fashion-MNIST",
                       description="Train a VAE with Adam on the negative ELBO, checkpointing "
                                   "after every epoch, then report the test ELBO and an IWAE "
                                   "log-likelihood bound.",
                       epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, help=f"(default: {d['dataset']})")
    g.add_argument("--data-dir", metavar="DIR",
                   help="folder holding the IDX files (default: $NPVAE_DATA_DIR, the user "
                        "cache, /usr/share/datasets, else download)")
    g.add_argument("--data", dest="source", metavar="FILE",
                   help="train on your own data instead: an .npy of x, or an .npz with x (and "
                        "optionally y labels); x is (N, D) or (N, H, W) floats in [0, 1]; a "
                        "fifth is held out for testing")
    g.add_argument("--no-fallback", action="store_true",
                   help="if the MNIST training images can be neither found nor downloaded, "
                        "stop with an error instead of using the test split bundled with npvae")
    g.add_argument("--val", type=nonnegative_int, metavar="N",
                   help=f"training examples held out for validation, 0 for none (default: "
                        f"{DEFAULT_VAL}, or a tenth of the training examples if fewer)")
    g.add_argument("--binarize", choices=["dynamic", "static", "none"],
                   help="binary pixels drawn afresh each epoch, once, or not at all (default: "
                        "dynamic for a bernoulli likelihood, else none)")
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=nonnegative_int, nargs="*", metavar="H",
                   help=f"hidden layer sizes of the encoder, mirrored by the decoder; 0 or none "
                        f"for a linear VAE (default: {_show(d['hidden'])})")
    g.add_argument("--latent-dim", type=positive_int, metavar="Z",
                   help=f"(default: {d['latent_dim']})")
    g.add_argument("--latent-dims", type=positive_int, nargs=2, metavar=("Z1", "Z2"),
                   help="a hierarchical VAE (npvae.HVAE) with two latent layers, z₂ above z₁, "
                        "instead of one of --latent-dim")
    g.add_argument("--likelihood", choices=LIKELIHOODS, help=f"(default: {d['likelihood']})")
    g.add_argument("--sigma", type=positive_float,
                   help="the fixed standard deviation σ of a gaussian likelihood; c = σ² "
                        "weighs reconstruction against the KL (default: 1.0)")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS),
                   help=f"(default: {d['activation']})")
    g.add_argument("--conditional", action="store_true", default=None,
                   help="a conditional VAE (npvae.CVAE), q(z|x, y) and p(x|z, y), on the labels")
    g.add_argument("--labels", type=positive_int, metavar="N",
                   help="M2, the semi-supervised VAE (npvae.SemiSupervisedVAE), on every "
                        "training image, keeping N of their labels, balanced across the classes "
                        "and drawn by --seed, and hiding the others; its --hidden default is "
                        f"{_show(M2_DEFAULTS['hidden'])}, for the classifier q(y|x) too")
    g.add_argument("--alpha", type=nonnegative_float,
                   help=f"with --labels: the weight of the labelled images' cross-entropy "
                        f"-log q(y|x) (default: {M2_DEFAULTS['alpha']:g})")
    g.add_argument("--labelled-share", type=positive_float, metavar="SHARE",
                   help=f"with --labels: repeat the labelled images in each epoch to about "
                        f"this share of the unlabelled ones, at least once (default: "
                        f"{M2_DEFAULTS['labelled_share']:g})")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int,
                   help=f"total epochs; with --resume, train until this many (default: "
                        f"{d['epochs']})")
    g.add_argument("--batch-size", type=positive_int, help=f"(default: {d['batch_size']})")
    g.add_argument("--lr", type=positive_float, help=f"Adam's learning rate (default: {d['lr']})")
    g.add_argument("--beta", type=nonnegative_float, help=f"KL weight (default: {d['beta']})")
    g.add_argument("--warmup", type=nonnegative_float, metavar="EPOCHS",
                   help="raise the KL weight linearly from 0 over this many epochs, step by "
                        "step (default: 0, no warm-up)")
    g.add_argument("--objective", choices=OBJECTIVES, help=f"(default: {d['objective']})")
    g.add_argument("--k", type=positive_int,
                   help=f"samples per example in the objective (default: {d['k']})")
    g.add_argument("--free-bits", type=nonnegative_float, metavar="NATS",
                   help="floor on the KL of each latent dimension (default: 0)")
    g.add_argument("--seed", type=nonnegative_int,
                   help=f"seeds the split, the initialisation and training (default: {d['seed']})")
    g.add_argument("--textbook", action="store_true", default=None,
                   help="train with the textbook Adam (Kingma & Ba's Algorithm 1, as written) "
                        "instead of its fused twin: the same numbers to float32 rounding, slower")
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="run folder (default: runs/DATASET)")
    g.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR with its saved settings, bit for bit")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh even if --out already holds a run")
    g.add_argument("--eval-k", type=nonnegative_int, default=10, metavar="K",
                   help="importance samples per test example for the log-likelihood bound in "
                        "the summary (a few seconds at 10); 0 skips it (default: 10; npvae "
                        "evaluate --k 5000 gives the full estimate)")
    g.add_argument("--early-stop", type=positive_int, metavar="N",
                   help="stop once N epochs pass without a lower validation loss (needs --val "
                        "> 0; given again on --resume)")
    g.add_argument("--save-best", action="store_true",
                   help="keep the model of the lowest validation loss in RUN/best.npz "
                        "(needs --val > 0)")
    g.add_argument("--quiet", action="store_true", help="print only the summary")
    _add_verbose(p)
    p.set_defaults(func=cmd_train)

    p = _checkpoint_command(sub, cmd_evaluate, "evaluate",
                            "test ELBO, IWAE log-likelihood, active units",
                            "Evaluate a checkpoint on the test split: the ELBO (recon and KL), "
                            "the importance-weighted log-likelihood, the active units and the "
                            "KL of each latent dimension.", seed_help="seeds the noise")
    p.add_argument("--k", type=positive_int, default=DEFAULT_EVAL_K,
                   help=f"importance samples per example (default: {DEFAULT_EVAL_K}, about a "
                        f"minute over 10,000 MNIST images; --k 5000 for the published estimate)")
    p.add_argument("--n", type=positive_int, help="use the first N test examples (default: all)")
    p.add_argument("--binarize", choices=["dynamic", "static", "none"],
                   help="binarize the test images (once, fixed seed) unless 'none' (default: "
                        "as in training)")
    p.add_argument("--batch-size", type=positive_int, help="examples per chunk (default: auto)")

    p = _checkpoint_command(sub, cmd_sample, "sample", "a PNG grid of samples from the prior",
                            "Decode n draws z ~ N(0, I) and save them as a greyscale grid (for "
                            "a CVAE, with --label or every class in turn).",
                            data=False)
    p.add_argument("--label", type=nonnegative_int,
                   help="for a CVAE or M2 (npvae train --labels): draw this class "
                        "(default: every class in turn)")
    p.add_argument("--n", type=positive_int, default=64, help="number of samples (default: 64)")
    p.add_argument("--draw", action="store_true",
                   help="draw x ~ p(x|z) (binary pixels for a Bernoulli decoder) instead of "
                        "showing the mean of p(x|z)")
    p.add_argument("--ncols", type=positive_int, help="images per row (default: about √n)")
    p.add_argument("--out", help="PNG file or folder/ (default: samples.png, or "
                                 "samples_draws.png with --draw)")

    p = _checkpoint_command(sub, cmd_plot, "plot", "every figure that applies to a checkpoint",
                            "Draw the samples, training curves, reconstructions, KL per "
                            "dimension and interpolations (and, for Z = 2, the latent scatter "
                            "and manifold) of a checkpoint, as PNGs.")
    p.add_argument("--out", default="figures", help="folder for the PNGs (default: figures)")

    p = sub.add_parser("gradcheck", help="print the gradient-check table",
                       description="Check every primitive and every parameter of small VAEs "
                                   "(each likelihood) against centred finite differences, "
                                   "in float64, and the loss values against independent "
                                   "references (scipy.stats, Monte Carlo, exact PPCA).")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the random inputs (default 0)")
    p.add_argument("--plant", choices=PLANT_NAMES, metavar="BUG",
                   help=f"plant a known bug for the run and show which check catches it: "
                        f"{', '.join(PLANT_NAMES)}")
    _add_verbose(p)
    p.set_defaults(func=cmd_gradcheck)
    return parser


def _one_line(err):
    """The message of an error on one line (multi-line help texts are joined)."""
    return " ".join(str(err).split()) or type(err).__name__


def main(argv=None):
    from .training import TrainingInterrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TrainingInterrupted as stop:
        folder = stop.checkpoint.parent if stop.checkpoint else None
        print(f"npvae {args.command}: interrupted at {stop.where}; saved {stop.checkpoint}. Resume "
              f"with: npvae train --resume {folder}", file=sys.stderr)
        return 130
    except (NpvaeError, ValueError, TypeError, OSError, MemoryError) as err:
        if args.verbose:
            raise
        if isinstance(err, MemoryError) and not isinstance(err, NpvaeError):
            err = (f"not enough memory for this request ({_one_line(err)}); ask for less "
                   f"(smaller --hidden, --latent-dim, --n or --batch-size).")
        print(f"npvae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
