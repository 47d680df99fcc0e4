"""Checkpoints written before the layout by role (tests/data/checkpoints_v0.1, see its README)
load, compute the loss they computed then, and resume training."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import npvae

OLD = Path(__file__).parent / "data" / "checkpoints_v0.1"
LOSSES = json.loads((OLD / "losses.json").read_text())
X = (np.random.default_rng(0).random((60, 12)) < 0.4).astype(np.float32)


@pytest.mark.parametrize("kind, cls", [("vae", npvae.VAE), ("cvae", npvae.CVAE),
                                       ("hvae", npvae.HVAE), ("gaussian_learned", npvae.VAE)])
def test_an_old_checkpoint_loads_and_computes_the_same_loss(kind, cls):
    model = npvae.load(OLD / f"{kind}.npz")
    assert type(model) is cls
    eps = np.random.default_rng(9).standard_normal((5, model.noise_dim)).astype(np.float32)
    args = (X[:5], np.arange(5) % 3) if kind == "cvae" else (X[:5],)
    loss = model.loss_and_grads(*args, eps=eps)[0]
    # float32 rounding: bernoulli_nll now computes softplus and sigmoid from one exp
    assert loss == pytest.approx(LOSSES[kind]["loss"], rel=1e-5)


def test_an_old_run_resumes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(OLD / "vae.npz", run / "checkpoint.npz")
    model = npvae.load(run / "checkpoint.npz")
    history = npvae.train(model, X, epochs=3, batch_size=20, verbose=False, out_dir=run,
                          resume=run)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert np.isfinite(history[-1]["loss"])
