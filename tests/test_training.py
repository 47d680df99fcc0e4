"""Tests for npvae.run.training (npvae.train): the loss falls, the schedule, binarization, hooks, progress output,
bit-exact resume (at an epoch's end and mid-epoch, after Ctrl-C), and the non-finite guard.

Tiny models (D = 20, Z = 2) on a few hundred synthetic binary examples, one to three epochs.
"""

import io
import json
import math
import os
import signal
import sys

import numpy as np
import pytest

import npvae
from npvae.run import checkpoint
from npvae.run.training import NonFiniteLossError, TrainingInterrupted, train, warmup_beta

D = 20


@pytest.fixture(scope="module")
def x():
    """300 binary examples whose pixels have different means: something to learn."""
    rng = np.random.default_rng(0)
    return (rng.random((300, D)) < np.linspace(0.05, 0.95, D)).astype(np.float32)


def tiny(seed=1, **kw):
    return npvae.VAE(D, (16,), 2, seed=seed, **kw)


def assert_same_params(a, b):
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "examples_per_s")}
            for r in history]


def record_calls(model, on_call=None):
    """Wrap model.loss_and_grads to record (x batch, beta) of every call."""
    calls, inner = [], model.loss_and_grads

    def wrapped(xb, **kw):
        calls.append((xb.copy(), kw["beta"]))
        if on_call is not None:
            on_call(len(calls))
        return inner(xb, **kw)

    model.loss_and_grads = wrapped
    return calls


# --------------------------------------------------------------------------- the basics


def test_training_lowers_the_loss_and_records_each_epoch(x):
    model = tiny()
    history = train(model, x, epochs=3, batch_size=30, lr=1e-2, x_val=x[:50], verbose=False)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"] - 1
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.5
    for r in history:
        assert set(r) == {"epoch", "loss", "recon", "kl", "beta", "seconds", "examples_per_s",
                          "val_loss", "val_recon", "val_kl", "lr"}
        assert r["loss"] == pytest.approx(r["recon"] + r["kl"])  # beta = 1
        assert r["val_loss"] == pytest.approx(r["val_recon"] + r["val_kl"])
        assert r["seconds"] > 0 and r["examples_per_s"] > 0
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_minibatches_are_slices_of_one_permutation_per_epoch(x):
    model = tiny()
    calls = record_calls(model)
    train(model, x, epochs=2, batch_size=128, verbose=False)
    sizes = [len(xb) for xb, _ in calls]
    assert sizes == [128, 128, 44] * 2  # every example once per epoch, the last batch smaller
    rows = {tuple(r) for r in x}
    for epoch in range(2):
        seen = np.concatenate([xb for xb, _ in calls[3 * epoch:3 * epoch + 3]])
        assert sorted(map(tuple, seen)) == sorted(map(tuple, x))  # a permutation of x
        assert {tuple(r) for r in seen} <= rows
    assert not np.array_equal(calls[0][0], calls[3][0])  # reshuffled in epoch 2


def test_history_json_is_written_and_matches(x, tmp_path):
    history = train(tiny(), x, epochs=2, batch_size=100, verbose=False, out_dir=tmp_path)
    assert json.loads((tmp_path / "history.json").read_text()) == history
    assert checkpoint.load_training_state(tmp_path).history == history


def test_warmup_beta_rises_linearly_per_step():
    assert warmup_beta(0, 10, 1.0, 2) == 0.0
    assert warmup_beta(5, 10, 1.0, 2) == 0.25
    assert warmup_beta(10, 10, 1.0, 2) == 0.5
    assert warmup_beta(20, 10, 1.0, 2) == 1.0
    assert warmup_beta(35, 10, 1.0, 2) == 1.0
    assert warmup_beta(5, 10, 4.0, 0.5) == 4.0
    assert warmup_beta(3, 10, 4.0, 0.5) == pytest.approx(2.4)
    assert warmup_beta(0, 10, 0.7, 0) == 0.7


def test_warmup_schedule_reaches_the_model_step_by_step(x):
    model = tiny()
    calls = record_calls(model)
    history = train(model, x, epochs=3, batch_size=100, beta=2.0, warmup_epochs=2,
                    verbose=False)
    betas = [b for _, b in calls]
    assert betas == [2.0 * min(1.0, t / 6) for t in range(9)]  # 3 steps per epoch
    assert [r["beta"] for r in history] == [betas[2], betas[5], betas[8]]
    assert betas[0] == 0.0 and betas[-1] == 2.0


def test_dynamic_binarization_draws_fresh_pixels_each_epoch():
    grey = np.full((64, D), 0.5, dtype=np.float32)  # identical rows: order does not matter
    model = tiny()
    calls = record_calls(model)
    train(model, grey, epochs=2, batch_size=64, binarize="dynamic", verbose=False)
    (first, _), (second, _) = calls
    for xb in (first, second):
        assert xb.dtype == np.float32
        assert set(np.unique(xb)) == {0.0, 1.0}
        assert abs(xb.mean() - 0.5) < 0.05
    assert (first != second).mean() > 0.3  # about half the pixels differ between draws


def test_static_binarization_needs_binary_data(x):
    with pytest.raises(ValueError, match="binarize='static' needs binary"):
        train(tiny(), x * 0.5, epochs=1, binarize="static", verbose=False)
    model = tiny()
    calls = record_calls(model)
    train(model, x, epochs=1, batch_size=300, binarize="static", verbose=False)
    assert sorted(map(tuple, calls[0][0])) == sorted(map(tuple, x))  # used as given


def test_hooks_are_called_after_each_epoch_and_may_stop(x, tmp_path):
    seen = []

    def hook(epoch, record, model):
        seen.append((epoch, dict(record), model))
        record["custom"] = epoch * 10

    model = tiny()
    history = train(model, x, epochs=3, batch_size=100, hooks=[hook], verbose=False,
                    out_dir=tmp_path)
    assert [e for e, _, _ in seen] == [1, 2, 3]
    assert all(m is model for _, _, m in seen)
    assert [r["custom"] for r in history] == [10, 20, 30]  # a hook may add to the record
    assert checkpoint.load_training_state(tmp_path).history[-1]["custom"] == 30

    stopped = train(tiny(), x, epochs=5, batch_size=100, verbose=False,
                    hooks=[lambda epoch, record, model: epoch == 2])
    assert len(stopped) == 2


@pytest.mark.parametrize("kw, match", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"beta": -1.0}, "beta must be a finite number"),
    ({"warmup_epochs": math.nan}, "warmup_epochs must be a finite number"),
    ({"binarize": "sometimes"}, "unknown binarize 'sometimes'"),
    ({"objective": "elbow"}, "unknown objective 'elbow'"),
    ({"objective": "iwae", "beta": 0.5}, "IWAE objective has no beta"),
    ({"lr": -1.0}, "lr must be a positive learning rate"),
])
def test_bad_settings_are_refused(x, kw, match):
    with pytest.raises(ValueError, match=match):
        train(tiny(), x, verbose=False, **kw)


# --------------------------------------------------------------------------- progress output


def test_one_line_per_epoch_and_quiet_when_not_verbose(x, capsys):
    train(tiny(), x, epochs=2, batch_size=100, x_val=x[:30], verbose=True)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and err == ""  # no live progress: stderr is not a terminal
    assert lines[0].startswith("epoch 1/2  loss ")
    for word in ("recon", "kl", "val", " s ", "ex/s"):
        assert word in lines[1]
    train(tiny(), x, epochs=2, batch_size=100, x_val=x[:30], verbose=False)
    assert capsys.readouterr() == ("", "")


def test_live_progress_only_on_a_terminal(x, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    train(tiny(), x, epochs=1, batch_size=10, verbose=True)
    text = term.getvalue()
    assert "\r" in text and "epoch 1/1 [" in text and "30/30" in text
    assert text.endswith("\r")  # cleared before the epoch line
    assert capsys.readouterr().out.startswith("epoch 1/1")


# --------------------------------------------------------------------------- resume


def test_resume_after_an_epoch_is_bit_exact(x, tmp_path):
    kw = dict(batch_size=32, x_val=x[:40], binarize="dynamic", warmup_epochs=1.5,
              verbose=False)
    whole = tiny()
    history = train(whole, x * 0.9, epochs=2, **kw)

    first = tiny()
    train(first, x * 0.9, epochs=1, out_dir=tmp_path, **kw)
    resumed = tiny(seed=123)  # another initialisation: the checkpoint must overwrite it
    resumed_history = train(resumed, x * 0.9, epochs=2, resume=tmp_path, **kw)
    assert_same_params(whole, resumed)
    assert without_timing(resumed_history) == without_timing(history)


def test_ctrl_c_mid_epoch_saves_the_step_and_resumes_bit_exact(x, tmp_path):
    kw = dict(batch_size=32, binarize="dynamic", verbose=False)
    whole = tiny()
    history = train(whole, x * 0.9, epochs=2, **kw)

    model = tiny()
    record_calls(model, on_call=lambda n: n == 14 and os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(TrainingInterrupted) as stop:
        train(model, x * 0.9, epochs=2, out_dir=tmp_path, **kw)
    # Step 14 overall is step 4 of epoch 2 (10 steps per epoch); it completed, then stopped.
    assert (stop.value.epochs_done, stop.value.step, stop.value.steps) == (1, 4, 10)
    assert "resume=" in str(stop.value) and stop.value.checkpoint == tmp_path / "checkpoint.npz"
    state = checkpoint.load_training_state(tmp_path)
    assert state.progress["step"] == 4 and len(state.history) == 1
    assert int(state.optimizer_state["t"]) == 14
    assert_same_params(state.model, model)  # the saved state is the one after step 14
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    resumed = tiny(seed=7)
    resumed_history = train(resumed, x * 0.9, epochs=2, resume=tmp_path, **kw)
    assert_same_params(whole, resumed)
    assert without_timing(resumed_history) == without_timing(history)


def test_a_second_ctrl_c_aborts_at_once_without_saving(x, tmp_path):
    def press_twice(n):
        if n == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    model = tiny()
    record_calls(model, on_call=press_twice)
    with pytest.raises(KeyboardInterrupt) as stop:
        train(model, x, epochs=2, batch_size=32, out_dir=tmp_path, verbose=False)
    assert not isinstance(stop.value, TrainingInterrupted)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_resume_mid_epoch_with_another_batch_size_is_refused(x, tmp_path):
    model = tiny()
    record_calls(model, on_call=lambda n: n == 2 and os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(TrainingInterrupted):
        train(model, x, epochs=1, batch_size=32, out_dir=tmp_path, verbose=False)
    with pytest.raises(npvae.CheckpointError, match="same training data and batch size"):
        train(tiny(), x, epochs=1, batch_size=64, resume=tmp_path, verbose=False)


def test_resume_with_another_optimizer_is_refused(x, tmp_path):
    train(tiny(), x, epochs=1, batch_size=100, out_dir=tmp_path, verbose=False)
    model = tiny()
    with pytest.raises(npvae.CheckpointError, match="trained with Adam"):
        train(model, x, epochs=2, resume=tmp_path, optimizer=npvae.SGD(model.params, 0.1),
              verbose=False)


# --------------------------------------------------------------------------- divergence


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(x, tmp_path):
    model = tiny()
    after_epoch_1 = {}
    inner = model.loss_and_grads
    calls = []

    def poisoned(xb, **kw):
        calls.append(1)
        loss, grads, stats = inner(xb, **kw)
        return (math.nan if len(calls) == 5 else loss), grads, stats  # step 2 of epoch 2

    def keep(epoch, record, m):  # only epoch 1 completes
        after_epoch_1.update({k: p.copy() for k, p in m.params.items()})

    model.loss_and_grads = poisoned
    with pytest.raises(NonFiniteLossError) as err:
        train(model, x, epochs=3, batch_size=100, out_dir=tmp_path, verbose=False, hooks=[keep])
    message = str(err.value)
    for part in ("diverged at epoch 2, step 2 of 3", "the loss is nan", "not applied",
                 "learning rate too high", "--lr",
                 "checkpoint.npz (at the end of epoch 1), is kept"):
        assert part in message
    saved = npvae.load(tmp_path)
    for name, p in saved.params.items():
        assert np.isfinite(p).all()
        assert np.array_equal(p, after_epoch_1[name])
    assert all(np.isfinite(p).all() for p in model.params.values())  # the step was skipped


def test_a_huge_learning_rate_is_caught_before_it_writes_nan(x, tmp_path):
    model = tiny()
    with pytest.raises(NonFiniteLossError, match=r"learning rate too high \(lr = 1e\+06\)"):
        train(model, x, epochs=2, batch_size=30, lr=1e6, out_dir=tmp_path, verbose=False)
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert not (tmp_path / "checkpoint.npz").exists()  # it diverged within the first epoch


# --------------------------------------------------------------------------- the pieces


def test_train_step_applies_one_adam_step_and_refuses_a_non_finite_one(x):
    from npvae.run.training import train_step

    model, twin = tiny(), tiny()
    opt, opt_twin = npvae.Adam(model.params, lr=1e-2), npvae.Adam(twin.params, lr=1e-2)
    eps_rng, twin_rng = np.random.default_rng(4), np.random.default_rng(4)
    stats = train_step(model, opt, x[:32], rng=eps_rng)
    _, grads, ref = twin.loss_and_grads(x[:32], rng=twin_rng)
    opt_twin.step(grads)
    assert stats == ref and opt.t == 1
    assert_same_params(model, twin)
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(NonFiniteLossError, match="the loss is inf|the gradient of .* reached"):
        train_step(model, opt, x[:32], beta=1e300)
    assert opt.t == 1 and all(np.array_equal(before[k], model.params[k]) for k in before)


@pytest.mark.parametrize("fused", [False, True])
def test_both_kernel_forms_train_alike(x, fused):
    """fused=False (textbook) and fused=True (twins) give the same losses to float rounding."""
    ref = train(tiny(), x, epochs=2, batch_size=50, verbose=False, fused=True)
    history = train(tiny(), x, epochs=2, batch_size=50, verbose=False, fused=fused)
    for a, b in zip(history, ref):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_the_model_generator_after_a_resume_is_the_uninterrupted_runs(x, tmp_path):
    """train draws from model.rng; a resumed run must leave it, and save it, bit-equal."""
    whole = tiny()
    train(whole, x, epochs=2, batch_size=64, out_dir=tmp_path / "whole", verbose=False)
    part = tiny()
    train(part, x, epochs=1, batch_size=64, out_dir=tmp_path / "part", verbose=False)
    resumed = tiny(seed=5)
    train(resumed, x, epochs=2, batch_size=64, resume=tmp_path / "part",
          out_dir=tmp_path / "part", verbose=False)
    assert resumed.rng.bit_generator.state == whole.rng.bit_generator.state
    np.testing.assert_array_equal(npvae.load(tmp_path / "part").sample(8),
                                  npvae.load(tmp_path / "whole").sample(8))


def test_sigterm_mid_epoch_saves_like_ctrl_c(x, tmp_path):
    model = tiny()
    record_calls(model, on_call=lambda n: n == 3 and os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(TrainingInterrupted) as stop:
        train(model, x, epochs=2, batch_size=32, out_dir=tmp_path, verbose=False)
    assert (stop.value.epochs_done, stop.value.step) == (0, 3)
    assert checkpoint.load_training_state(tmp_path).progress["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_a_diverged_epoch_never_replaces_the_good_checkpoint(x, tmp_path):
    """Finite steps can still end an epoch with weights too large to square (the issue's
    repro: lr 1e30, one batch per epoch): that epoch is refused, and the checkpoint of the
    epoch before is kept."""
    model = tiny()
    kw = dict(batch_size=len(x), out_dir=tmp_path, x_val=x[:20], verbose=False)
    train(model, x, epochs=1, **kw)
    good = checkpoint.load_training_state(tmp_path)
    with pytest.raises(NonFiniteLossError,
                       match=r"diverged in epoch 2: .*W reached.*end of epoch 1\), is kept"):
        train(tiny(), x, epochs=2, resume=tmp_path, lr=1e30, **kw)
    kept = checkpoint.load_training_state(tmp_path)
    assert len(kept.history) == 1
    assert_same_params(kept.model, good.model)


def test_a_nan_validation_loss_is_refused(x, tmp_path, monkeypatch):
    """Finite weights whose validation loss is NaN are refused too, and nothing is saved."""
    def nan_elbo(model, x, **kw):
        return {"elbo": float("nan"), "recon": float("nan"), "kl": float("nan")}

    monkeypatch.setattr(npvae.study.evaluate, "elbo", nan_elbo)
    with pytest.raises(NonFiniteLossError, match="epoch 1: the validation loss is nan"):
        train(tiny(), x, epochs=1, batch_size=100, out_dir=tmp_path, x_val=x[:20],
              verbose=False)
    assert not (tmp_path / checkpoint.FILENAME).exists()


def test_a_cvae_trains_through_the_same_loop_and_resumes_bit_exact(x, tmp_path):
    y = (np.arange(len(x)) % 3).astype(np.int64)
    kw = dict(y=y, batch_size=32, x_val=x[:30], y_val=y[:30], verbose=False)
    whole = npvae.CVAE(D, 3, (16,), 2, seed=1)
    history = train(whole, x, epochs=2, **kw)
    assert history[-1]["loss"] < history[0]["loss"] and "val_loss" in history[-1]
    model = npvae.CVAE(D, 3, (16,), 2, seed=1)
    inner = model.loss_and_grads
    calls = []

    def stop_at_5(xb, yb, **kws):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return inner(xb, yb, **kws)

    model.loss_and_grads = stop_at_5
    with pytest.raises(TrainingInterrupted):
        train(model, x, epochs=2, out_dir=tmp_path, **kw)
    resumed = npvae.CVAE(D, 3, (16,), 2, seed=9)
    assert without_timing(train(resumed, x, epochs=2, resume=tmp_path, **kw)) == \
        without_timing(history)
    assert_same_params(whole, resumed)
    with pytest.raises(TypeError, match="a CVAE trains on labels"):
        train(npvae.CVAE(D, 3, (16,), 2), x, epochs=1, verbose=False)
    with pytest.raises(TypeError, match="conditional model"):
        train(tiny(), x, y=y, epochs=1, verbose=False)


def test_the_math_core_has_no_trainer_patched_in():
    """Models hold the math; npvae.train trains them (no model.fit patched in by the package)."""
    assert not hasattr(npvae.VAE, "fit") and not hasattr(npvae.CVAE, "log_likelihood")
