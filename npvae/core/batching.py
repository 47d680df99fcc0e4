"""Minibatches: the one loop over a data set in batches, for training, evaluation and demos.

    for step, index in minibatches(len(x), 128, seed=seed, epoch=epoch):   # shuffled
        xb = x[index]                                                      # (B, D)
    for step, index in minibatches(len(x), 1000):                          # in order
        ...

A shuffled epoch's order is a function of (seed, epoch) alone, ``epoch_permutation``: any
epoch's batches can be drawn again, for a resume in the middle of it, without replaying the
epochs before. Shapes: N examples, B batch.
"""

import math

import numpy as np

from . import checks


def epoch_permutation(n, seed, epoch):
    """The order of n examples in epoch ``epoch`` (0-based): (N,) ints, a permutation drawn
    from a Generator seeded with the pair (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def n_batches(n, batch_size):
    """How many batches cover n examples: ⌈N / B⌉ (the last may be smaller)."""
    return math.ceil(n / batch_size)


def minibatches(n, batch_size, seed=None, epoch=0, start=0):
    """Yield (step, index) for the batches of one pass over n examples, from batch ``start`` on.

    seed : None for the examples in order (index is then a slice, so x[index] is a view), or
        an int ≥ 0 to shuffle them by ``epoch_permutation(n, seed, epoch)`` (index is an array).
    Batch ``step`` holds examples step·B to (step + 1)·B of the order; every example is in
    exactly one batch, and only the last may have fewer than B.
    """
    batch_size = checks.positive_int(batch_size, "batch_size")
    order = None if seed is None else epoch_permutation(n, seed, epoch)  # (N,)
    for step in range(start, n_batches(n, batch_size)):
        lo, hi = step * batch_size, min((step + 1) * batch_size, n)
        yield step, (slice(lo, hi) if order is None else order[lo:hi])
