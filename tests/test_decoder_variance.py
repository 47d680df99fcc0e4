"""The constant c = σ², the decoder's variance, balances reconstruction against the KL.

    L(σ, β) = ‖x − mean‖² / (2σ²) + β KL + const,   so   σ² L(σ, 1) = L(1, σ²) + const:

training with σ and β = 1 follows the same gradient as σ = 1 and β = σ², scaled by 1/σ²."""

import numpy as np
import pytest

import npvae


@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
def test_sigma_squared_is_a_kl_weight(sigma):
    kwargs = dict(hidden_dims=(5,), latent_dim=3, likelihood="gaussian", dtype=np.float64)
    at_sigma = npvae.VAE(6, sigma=sigma, seed=0, **kwargs)
    at_one = npvae.VAE(6, sigma=1.0, seed=0, **kwargs)
    rng = np.random.default_rng(1)
    x, eps = rng.standard_normal((4, 6)), rng.standard_normal((2, 4, 3))
    loss_s, grads_s, _ = at_sigma.loss_and_grads(x, eps, beta=1.0)
    loss_1, grads_1, _ = at_one.loss_and_grads(x, eps, beta=sigma**2)
    for name in grads_s:
        np.testing.assert_allclose(grads_s[name], grads_1[name] / sigma**2, rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    # The losses differ by the constant D/2 log 2πσ² and the factor σ².
    const = 6 / 2 * (sigma**2 * np.log(2 * np.pi * sigma**2) - np.log(2 * np.pi))
    assert sigma**2 * loss_s == pytest.approx(loss_1 + const, rel=1e-10)


def test_the_cli_takes_sigma_for_the_gaussian_likelihood_only(tmp_path, capsys):
    from npvae.run import cli
    assert cli.main(["train", "--sigma", "0.1", "--out", str(tmp_path / "r")]) == 2
    assert "--sigma is the fixed σ of --likelihood gaussian" in capsys.readouterr().err
