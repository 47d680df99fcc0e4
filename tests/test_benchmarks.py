"""benchmarks/epoch_time.py's tools (issue 26): what it reports about the machine, how it
counts subnormals and drift, and that one short row runs through the current library."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from npvae.core import optim

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def epoch_time():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("epoch_time")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_subnormals_counts_only_nonzero_entries_below_the_smallest_normal(epoch_time):
    tiny32, tiny64 = np.finfo(np.float32).smallest_normal, np.finfo(np.float64).smallest_normal
    a = np.array([0, tiny32, tiny32 / 2, -tiny32 / 8, 1e-45, 1.0], np.float32)
    b = np.array([tiny32 / 2, tiny64 / 2, -tiny64 / 3, tiny64], np.float64)  # normal in float64
    assert epoch_time.subnormals([a]) == 3
    assert epoch_time.subnormals([a, b]) == 5


def test_drift_is_the_last_epochs_over_the_second(epoch_time):
    assert epoch_time.drift([9.0, 2.5, 2.6, 3.0, 4.0, 4.3]) == pytest.approx(4.0 / 2.5)
    assert np.isnan(epoch_time.drift([1.0, 2.0]))


def test_flush_every_switches_the_flush_and_restores_it(epoch_time):
    before = optim.FLUSH_EVERY
    with epoch_time.flush_every(epoch_time.NO_FLUSH):
        assert optim.FLUSH_EVERY == epoch_time.NO_FLUSH
    assert optim.FLUSH_EVERY == before


def test_the_machine_lines_name_cpu_simd_and_blas(epoch_time):
    lines = epoch_time.machine_lines()
    assert lines[0].startswith("CPU: ") and "unknown" not in lines[0].split(",")[0]
    baseline, found = epoch_time.simd_features()
    assert baseline and all(isinstance(f, str) for f in baseline + found)
    assert any(line.startswith("BLAS: ") and "kernel" in line for line in lines)


def test_blas_info_works_without_threadpoolctl(epoch_time, monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import now raises ImportError
    info = epoch_time.blas_info()
    assert "threadpoolctl" not in info or "not installed" in info
    assert info.startswith("OpenBLAS, kernel ") or info.startswith("unknown")


def test_one_short_row_reports_each_epoch_and_the_optimizer_subnormals(epoch_time, capsys):
    x = (np.random.default_rng(0).random((600, 784)) < 0.3).astype(np.float32)
    t = epoch_time.run_row(("standard", (16,), 3, 128, False, True, True), x, 2, seed=0)
    assert len(t["epoch"]) == len(t["matmul"]) == len(t["subnormal"]) == 2
    assert all(s > 0 for s in t["epoch"]) and all(n >= 0 for n in t["subnormal"])
    out = capsys.readouterr().out
    assert "epoch s" in out and "subnormal" in out


def test_the_step_breakdown_times_every_part(epoch_time):
    x = (np.random.default_rng(0).random((128, 784)) < 0.3).astype(np.float32)
    ms = epoch_time.step_breakdown(x, seed=0, repeats=2)
    assert {"products alone", "loss_and_grads", "Adam fused, no flush",
            "Adam textbook, flush every step"} <= set(ms)
    difference = ms.pop("loss elementwise (the difference)")
    assert difference[0] == pytest.approx(ms["loss_and_grads"][0] - ms["products alone"][0])
    assert all(wall > 0 and cpu >= 0 for wall, cpu in ms.values())


def test_the_subnormal_penalty_runs_each_operation_on_both_kinds_of_input(epoch_time):
    result = epoch_time.subnormal_penalty(n=1000, repeats=2)
    assert "a *= 0.9" in result and "exp(a), result subnormal" in result
    assert all(len(pair) == 2 and min(pair) >= 0 for pair in result.values())


def test_demo_times_runs_a_demo_as_a_user_does_and_keeps_its_output(tmp_path, capsys):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        demo_times = importlib.import_module("demo_times")
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert demo_times.main(["--only", "linear_autoencoder", "--args", "--epochs 20",
                            "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("linear_autoencoder"))
    wall, cpu, code = row.split()[1:4]
    assert float(wall) >= 0 and float(cpu) >= 0 and code == "0"
    kept = tmp_path / "linear_autoencoder"
    assert "angle" in (kept / "output.txt").read_text().lower()
    assert list(kept.rglob("*.png"))  # the demo's figure, in its own folder
    wall, cpu, code, _ = demo_times.time_demo("linear_autoencoder", ["--no-such-flag"], 60)
    assert code == 2


def test_compare_trees_trains_each_tree_in_its_own_process_and_pairs_the_ratios(tmp_path,
                                                                                capsys):
    """benchmarks/compare_trees.py (issue 21): each run imports the npvae under the folder it
    is given, not the one installed, and the summary's ratios are NEW/OLD pair by pair."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        compare_trees = importlib.import_module("compare_trees")
    finally:
        sys.path.remove(str(BENCHMARKS))
    root = BENCHMARKS.parent
    figures = compare_trees.run(root, None, epochs=1, n=256)  # random binary images
    assert set(figures) == {"epoch_s", "cpu_s", "peak_mb"}
    assert 0 < figures["epoch_s"] < figures["cpu_s"] and figures["peak_mb"] > 20
    (tmp_path / "npvae").mkdir()  # another "version": its train sleeps 0.3 s and does nothing
    (tmp_path / "npvae" / "__init__.py").write_text(
        "import time\nVAE = lambda D, seed: None\ntrain = lambda *a, **k: time.sleep(0.3)\n")
    slept = compare_trees.run(tmp_path, None, epochs=1, n=16)
    assert slept["epoch_s"] >= 0.3 and slept["cpu_s"] < figures["cpu_s"]
    old = {"epoch_s": 2.0, "cpu_s": 10.0, "peak_mb": 400.0}
    pairs = [(old, {"epoch_s": 1.0, "cpu_s": 5.0, "peak_mb": 400.0}),
             (old, {"epoch_s": 3.0, "cpu_s": 15.0, "peak_mb": 400.0}),
             (old, {"epoch_s": 2.2, "cpu_s": 11.0, "peak_mb": 400.0})]
    lines = compare_trees.summary(pairs)
    assert "NEW/OLD median 1.100 (pairs 0.500 to 1.500)" in lines[0]
    assert "NEW/OLD median 1.000 (pairs 1.000 to 1.000)" in lines[2]
    with pytest.raises(SystemExit):
        compare_trees.main([str(BENCHMARKS), str(root)])  # benchmarks/ holds no npvae/
    assert "holds no npvae/ package" in capsys.readouterr().err
