"""demos/inference_gaps.py end to end on tiny fake data (issue 22.7): the linear-Gaussian case
finds its closed-form cost of a diagonal q, both kinds of model are split into the three gaps,
the numbers are printed and the figure is written."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_demos_beyond import _assert_pngs, _demo, fake_dataset  # noqa: E402,F401,F811

TINY = ["--dataset", "fashion-mnist", "--epochs", "1", "--hidden", "16", "--batch-size", "50",
        "--latent", "2"]


def test_inference_gaps_demo(fake_dataset, tmp_path, capsys):
    result = _demo("inference_gaps").main([*TINY, "--seeds", "0", "1", "--n-examples", "8",
                                           "--steps", "30", "--k-elbo", "40", "--k-log-px", "60",
                                           "--out", str(tmp_path)])
    linear = result["linear"]
    assert abs(linear["rho"]) > 0.8
    assert linear["measured"].mean() == pytest.approx(linear["closed_form"], abs=0.03)
    assert set(result["summary"]) == {"VAE (diagonal q)", "FullCovarianceVAE"}
    for summary in result["summary"].values():
        for key in ("log_px", "elbo_full", "elbo_diag", "elbo_encoder", "approx", "diag",
                    "amort"):
            mean, sd = summary[key]
            assert np.isfinite(mean) and sd >= 0
        assert summary["log_px"][0] > summary["elbo_encoder"][0]  # a bound, even on 1 epoch
    for runs in result["runs"].values():
        assert len(runs) == 2 and all(len(g["log_px"]) == 8 for _, _, g in runs)
    out = capsys.readouterr().out
    assert "closed form ½[Σ log Λ_ii − log det Λ]" in out
    assert out.count("ELBO(q_full*) − ELBO(q_diag*)") == 2 and "mean ± sd over seeds" in out
    _assert_pngs(tmp_path, ["inference_gaps.png"])
