"""The activations' forward values against their definitions, at every magnitude: the stable
forms (``layers.softplus``, ``layers.sigmoid``) must agree with the textbook formula where it is
finite and stay finite, exact and warning-free where it overflows."""

import warnings

import numpy as np
import pytest
import scipy.special

from npvae.core import layers


def test_leaky_relu_is_x_above_zero_and_a_hundredth_of_x_below():
    x = np.array([-3.0, -0.5, -1e-3, 1e-3, 0.25, 0.5, 0.999, 2.0])
    y, mask = layers.leaky_relu_forward(x)
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0.01 * x))
    np.testing.assert_array_equal(mask, x > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_is_log1p_exp_and_finite_where_exp_overflows(dtype):
    x = np.array([-1000, -100, -20, -1, 0, 1, 20, 100, 1000], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, not even a warning
        y = layers.softplus(x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, np.logaddexp(0, x.astype(np.float64)), rtol=1e-6,
                               atol=np.finfo(dtype).smallest_normal)  # subnormals: absolute
    assert y[-1] == 1000 and y[0] == 0  # exact at both ends


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_expit_and_silent_at_any_magnitude(dtype):
    x = np.array([-1000, -100, -89, -20, -1, 0, 1, 20, 89, 100, 1000], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the naive 1 / (1 + exp(-x)) overflows below -88.7
        y = layers.sigmoid(x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, scipy.special.expit(x.astype(np.float64)), rtol=1e-6,
                               atol=np.finfo(dtype).smallest_normal)
