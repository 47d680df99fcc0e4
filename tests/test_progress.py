"""Issue 24 item 8: no long job is silent. ``npvae evaluate`` prints the expected time, then
progress lines with the time left, to stderr whether or not it is a terminal; its default k
finishes in about a minute, the k = 5000 estimate one flag away; the training bar shows the
epoch's time left."""

import io
import sys
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.run import cli, runs
from npvae.study import evaluate

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import TINY, fake_mnist  # noqa: E402


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_eta_report_estimates_then_reports_at_a_modest_rate():
    stream, clock = io.StringIO(), Clock()
    report = runs.EtaReport("job", stream=stream, every=10.0, calibrate=0.5, clock=clock)
    clock.now = 0.1
    report(1, 1000)  # too early to estimate: silent
    assert stream.getvalue() == ""
    clock.now = 1.0
    report(10, 1000)  # 1 s for 10: about 100 s in all
    assert stream.getvalue() == "job: about 1.7 min in all (measured on the first 10 of 1,000)\n"
    for t, done in [(5.0, 50), (9.0, 90)]:  # within 10 s of the last line: silent
        clock.now = t
        report(done, 1000)
    assert stream.getvalue().count("\n") == 1
    clock.now = 11.0
    report(110, 1000)
    assert stream.getvalue().splitlines()[-1] == "job: 11 % (110 of 1,000), about 89 s left"
    clock.now = 100.0
    report(1000, 1000)  # done: the caller prints the result
    assert stream.getvalue().count("\n") == 2


def test_a_short_job_prints_nothing():
    stream, clock = io.StringIO(), Clock()
    report = runs.EtaReport("job", stream=stream, clock=clock)
    for done in range(1, 4):
        clock.now = 0.01 * done
        report(done, 1000)
    assert stream.getvalue() == ""


def test_log_likelihood_reports_every_chunk_and_keeps_its_numbers():
    model = npvae.VAE(12, (8,), 2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).random((7, 12))
    calls = []
    with_progress = evaluate.log_likelihood(model, x, k=30, rng=np.random.default_rng(1),
                                            max_rows=60, progress=lambda *a: calls.append(a))
    plain = evaluate.log_likelihood(model, x, k=30, rng=np.random.default_rng(1), max_rows=60)
    np.testing.assert_array_equal(with_progress, plain)
    assert calls == [(2, 7), (4, 7), (6, 7), (7, 7)]


def test_npvae_evaluate_prints_its_progress_to_stderr_when_not_a_terminal(tmp_path,
                                                                          monkeypatch, capsys):
    data_dir = fake_mnist(tmp_path / "data", n_train=120, n_test=30)
    assert cli.main(["train", "--data-dir", str(data_dir), *TINY, "--epochs", "1",
                     "--eval-k", "0", "--quiet", "--out", str(tmp_path / "R")]) == 0
    capsys.readouterr()
    monkeypatch.setattr(runs.EtaReport, "__init__", _fast_init(runs.EtaReport.__init__))
    assert cli.main(["evaluate", str(tmp_path / "R"), "--k", "50"]) == 0
    captured = capsys.readouterr()
    assert "npvae evaluate: log p(x), k = 50 samples per example: about" in captured.err
    assert "log p(x)" in captured.out and "about" not in captured.out


def _fast_init(init):
    """EtaReport's constructor with no calibration wait and a line per part (a tiny job)."""
    def fast(self, what, stream=None, every=15.0, calibrate=0.5, clock=None):
        init(self, what, stream, every=0.0, calibrate=0.0)
    return fast


def test_the_default_k_is_a_minute_and_5000_is_one_flag_away():
    parser = cli.build_parser()
    args = parser.parse_args(["evaluate", "runs/x"])
    assert args.k == cli.DEFAULT_EVAL_K == 1000
    assert parser.parse_args(["evaluate", "runs/x", "--k", "5000"]).k == 5000


def test_the_training_bar_shows_the_time_left(monkeypatch):
    stream = io.StringIO()
    stream.isatty = lambda: True
    line = runs.ProgressLine(True, stream)
    times = iter([0.0, 1.0, 2.0])
    monkeypatch.setattr(runs.time, "perf_counter", lambda: next(times))
    for step in (1, 2, 3):
        line.update(0, 5, step, 12, 1.5)
    assert stream.getvalue().rstrip().endswith("loss 1.500  9 s left")  # 1 s a step, 9 to go
