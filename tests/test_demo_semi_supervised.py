"""demos/semi_supervised.py end to end on tiny fake data: every method runs for each number of
labels and draw, the table and the figure come out, and the accuracies are real scores."""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from test_demos_beyond import _assert_pngs, _demo, fake_dataset  # noqa: E402,F401,F811

TINY = ["--dataset", "fashion-mnist", "--epochs", "2", "--hidden", "16", "--latent", "2",
        "--batch-size", "50", "--steps", "60", "--k", "2", "--m2-epochs", "1",
        "--m2-hidden", "16", "--m1m2-epochs", "2"]


def test_semi_supervised_demo(fake_dataset, tmp_path, capsys):
    demo = _demo("semi_supervised")
    results = demo.main([*TINY, "--labels", "20", "0", "--draws", "2", "--out", str(tmp_path)])
    assert set(results) == set(demo.METHODS)
    for method, per_count in results.items():
        assert [len(per_count[n]) for n in (20, 0)] == [2, 1], method
        assert all(0 <= a <= 1 for a in per_count[20] + per_count[0])
    # The fake classes are bright bars in distinct rows: with all 300 labels the supervised
    # classifiers are far above chance (10 %).
    assert results["MLP"][0][0] > 0.5 and results["softmax"][0][0] > 0.5
    out = capsys.readouterr().out
    assert "mean ± sd over 2 draws" in out and "M2" in out and "300 labels" in out
    _assert_pngs(tmp_path, ["semi_supervised.png"])
