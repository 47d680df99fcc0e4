"""npvae.core.batching: the one minibatch iterator, and the epoch order as a function of (seed, epoch)."""

import numpy as np
import pytest

from npvae.core.batching import epoch_permutation, minibatches, n_batches


@pytest.mark.parametrize("n,batch_size", [(10, 3), (9, 3), (1, 5), (300, 128)])
def test_every_example_once_in_order_and_only_the_last_batch_smaller(n, batch_size):
    batches = list(minibatches(n, batch_size))
    assert [step for step, _ in batches] == list(range(n_batches(n, batch_size)))
    flat = np.concatenate([np.arange(n)[index] for _, index in batches])
    np.testing.assert_array_equal(flat, np.arange(n))
    sizes = [len(np.arange(n)[index]) for _, index in batches]
    assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    assert all(isinstance(index, slice) for _, index in batches)  # views, not copies


def test_a_shuffled_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    def order(seed, epoch, start=0):
        return np.concatenate([index for _, index in minibatches(50, 8, seed, epoch, start)])

    np.testing.assert_array_equal(np.sort(order(3, 0)), np.arange(50))
    np.testing.assert_array_equal(order(3, 1), order(3, 1))  # recomputable, no state
    np.testing.assert_array_equal(order(3, 1), epoch_permutation(50, 3, 1))
    assert not np.array_equal(order(3, 0), order(3, 1))  # each epoch its own order
    assert not np.array_equal(order(3, 0), order(4, 0))
    np.testing.assert_array_equal(order(3, 2, start=4), order(3, 2)[32:])  # resume mid-epoch


def test_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(minibatches(10, 0))
