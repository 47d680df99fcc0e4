"""Issue 24 item 10: --early-stop N and --save-best on the validation loss (npvae.run.training.
EarlyStopping, a hook of npvae.train)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.run import checkpoint, cli
from npvae.run.training import EarlyStopping

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import TINY, fake_mnist  # noqa: E402


def test_the_hook_stops_after_patience_epochs_without_a_new_best(tmp_path):
    model = npvae.VAE(6, (4,), 2, seed=0)
    stop = EarlyStopping(patience=2, best_path=tmp_path / "best.npz")
    losses = [5.0, 4.0, 4.5, 3.9, 4.1, 4.2, 3.0]
    calls = []
    for epoch, loss in enumerate(losses, 1):
        model.params["out.b"][:] = epoch  # tells the saved model's epoch apart
        calls.append(stop(epoch, {"val_loss": loss}, model))
    assert calls == [False, False, False, False, False, True, False]
    assert (stop.best_epoch, stop.best_loss) == (7, 3.0)
    best, meta = checkpoint.load_with_metadata(tmp_path / "best.npz")
    assert meta["best_epoch"] == 7 and np.all(best.params["out.b"] == 7)


def test_a_resumed_runs_history_counts():
    stop = EarlyStopping(patience=1, history=[{"epoch": 1, "val_loss": 2.0},
                                             {"epoch": 2, "val_loss": 3.0}])
    assert (stop.best_epoch, stop.best_loss) == (1, 2.0)
    assert stop(3, {"val_loss": 2.5}, None) is True


def test_train_refuses_the_hook_without_validation_data():
    model = npvae.VAE(6, (4,), 2, seed=0)
    x = np.random.default_rng(0).random((20, 6))
    with pytest.raises(ValueError, match="pass x_val"):
        npvae.train(model, x, epochs=1, hooks=[EarlyStopping(patience=1)], verbose=False)


@pytest.fixture
def data_dir(tmp_path):
    return fake_mnist(tmp_path / "data", n_train=200, n_test=40)


def test_npvae_train_early_stop_and_save_best(data_dir, tmp_path, capsys, monkeypatch):
    # A validation loss that improves once and then never: epoch 2 is the best.
    losses = iter([10.0, 9.0, 9.5, 9.7, 9.8, 9.9])
    from npvae.study import evaluate
    real = evaluate.validation_loss

    def scripted(*args, **kwargs):
        result = real(*args, **kwargs)
        return dict(result, loss=next(losses))

    monkeypatch.setattr(evaluate, "validation_loss", scripted)
    out = tmp_path / "R"
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "6",
                     "--eval-k", "0", "--quiet", "--out", str(out), "--early-stop", "2",
                     "--save-best"]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 4 and summary["best_epoch"] == 2 and summary["stopped_early"]
    assert "lowest validation loss 9.00 at epoch 2; stopped early after epoch 4" in text
    _, meta = checkpoint.load_with_metadata(out / "best.npz")
    assert meta["best_epoch"] == 2


def test_early_stop_needs_validation_examples(data_dir, tmp_path, capsys):
    code = cli.main(["train", "--data-dir", str(data_dir), *TINY[2:], "--val", "0",
                     "--epochs", "1", "--quiet", "--out", str(tmp_path / "R"), "--save-best"])
    assert code == 2 and "--val N with N > 0" in capsys.readouterr().err
