"""npvae.study.memory: the evaluation's freed arrays are reused, not faulted in again."""

import resource
import sys

import numpy as np
import pytest

from npvae.study import evaluate
from npvae.study import memory
import npvae


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_arrays_of_a_chunk_come_back_without_page_faults():
    """With the thresholds set, making and freeing a chunk's worth of 3 MB arrays 40 times
    touches no new page: each 4 kB page the kernel would fault in and zero would count here
    (about 800 per array, 100,000 in all, when glibc unmaps or trims them)."""
    if not memory.keep_freed_memory():
        pytest.skip("not glibc")
    assert memory.keep_freed_memory()  # once set, it stays set
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((1024, 784), dtype=np.float32)
    for _ in range(3):  # the heap grows to the loop's peak once
        _ = [np.exp(logits), np.abs(logits), logits * 2, logits + 1]
    before = minor_faults()
    for _ in range(40):
        _ = [np.exp(logits), np.abs(logits), logits * 2, logits + 1]
    assert minor_faults() - before < 400


def test_log_likelihood_sets_the_thresholds(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1))
    model = npvae.VAE(6, (5,), 2, seed=0)
    evaluate.log_likelihood(model, np.full((2, 6), 0.5, np.float32), k=3)
    assert calls == [1]
