"""The public contract of npvae.VAE, its dtypes and determinism, and a training smoke test."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npvae import VAE, Adam
from npvae.core.distributions import kl_standard_normal


def binary_data(n, D, rng, n_prototypes=4, flip=0.05):
    """Noisy copies of a few random binary prototypes: structure a small VAE can learn."""
    prototypes = rng.uniform(size=(n_prototypes, D)) < 0.5
    x = prototypes[rng.integers(n_prototypes, size=n)]
    return (x ^ (rng.uniform(size=x.shape) < flip)).astype(np.float32)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("hidden", [(), (8,), (8, 6)])
def test_parameter_names_and_shapes(likelihood, hidden):
    model = VAE(10, hidden_dims=hidden, latent_dim=3, likelihood=likelihood)
    enc = (10, *hidden)
    dec = (3, *reversed(hidden))
    expected = {}
    for i in range(len(hidden)):
        expected[f"encoder.{i}.W"], expected[f"encoder.{i}.b"] = (enc[i], enc[i + 1]), (enc[i + 1],)
    for head in ("mu", "logvar"):
        expected[f"{head}.W"], expected[f"{head}.b"] = (enc[-1], 3), (3,)
    for i in range(len(hidden)):
        expected[f"decoder.{i}.W"], expected[f"decoder.{i}.b"] = (dec[i], dec[i + 1]), (dec[i + 1],)
    expected["out.W"], expected["out.b"] = (dec[-1], 10), (10,)
    if likelihood == "gaussian-learned":
        expected["out_logvar.W"], expected["out_logvar.b"] = (dec[-1], 10), (10,)
    assert {k: p.shape for k, p in model.params.items()} == expected
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_default_model_is_the_reference_784_400_20():
    model = VAE(784)
    assert model.params["encoder.0.W"].shape == (784, 400)
    assert model.params["mu.W"].shape == (400, 20)
    assert model.params["out.W"].shape == (400, 784)
    assert model.config.likelihood == "bernoulli" and model.config.activation == "relu"


def test_loss_is_mean_of_nll_plus_beta_kl_in_nats_per_example():
    rng = np.random.default_rng(0)
    model = VAE(6, hidden_dims=(5,), latent_dim=2, likelihood="gaussian", sigma=0.5,
                dtype=np.float64, seed=0)
    x, eps = rng.standard_normal((4, 6)), rng.standard_normal((3, 4, 2))
    loss, grads, stats = model.loss_and_grads(x, eps, beta=0.7)
    # recompute from the public pieces
    mu, logvar = model.encode(x)
    z = mu + np.exp(logvar / 2) * eps  # (3, 4, 2)
    mean = model.decode(z.reshape(-1, 2)).reshape(3, 4, 6)
    nll = 0.5 * ((x - mean) ** 2).sum(-1) / 0.25 + 3 * np.log(2 * np.pi * 0.25)  # (3, 4)
    kl = 0.5 * (mu**2 + np.exp(logvar) - logvar - 1).sum(-1)
    assert loss == pytest.approx(nll.mean() + 0.7 * kl.mean(), rel=1e-12)
    assert stats["recon"] == pytest.approx(nll.mean(), rel=1e-12)
    assert stats["kl"] == pytest.approx(kl.mean(), rel=1e-12)
    assert list(grads) == list(model.params)


@given(st.integers(0, 2**31), st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]))
def test_per_example_loss_does_not_depend_on_batch_order_or_company(seed, likelihood):
    rng = np.random.default_rng(seed)
    model = VAE(5, hidden_dims=(4,), latent_dim=2, likelihood=likelihood, dtype=np.float64,
                seed=seed)
    x = rng.uniform(size=(6, 5))
    eps = rng.standard_normal((6, 2))
    alone = [model.loss_and_grads(x[i:i + 1], eps[i:i + 1])[0] for i in range(6)]
    perm = rng.permutation(6)
    loss, grads, _ = model.loss_and_grads(x[perm], eps[perm])
    np.testing.assert_allclose(loss, np.mean(alone), rtol=1e-12)
    loss2, grads2, _ = model.loss_and_grads(x, eps)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads2[k], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_float32_in_float32_out(likelihood):
    model = VAE(12, hidden_dims=(8,), latent_dim=3, likelihood=likelihood, seed=0)
    x = np.random.default_rng(0).uniform(size=(5, 12)).astype(np.float32)
    loss, grads, stats = model.loss_and_grads(x, k=2)
    assert all(g.dtype == np.float32 for g in grads.values())
    loss, grads, stats = model.loss_and_grads(x, objective="iwae", k=3)
    assert all(g.dtype == np.float32 for g in grads.values())
    Adam(model.params).step(grads)
    assert all(p.dtype == np.float32 for p in model.params.values())
    mu, logvar = model.encode(x)
    assert mu.dtype == logvar.dtype == np.float32
    assert model.decode(mu).dtype == np.float32
    assert model.sample(3).dtype == np.float32 and model.reconstruct(x).dtype == np.float32
    assert model.log_weights(x, np.zeros((2, 5, 3), np.float32)).dtype == np.float32
    # float64 data is cast to the model's float32 (documented in npvae.core.checks)
    _, grads64, _ = model.loss_and_grads(x.astype(np.float64))
    assert all(g.dtype == np.float32 for g in grads64.values())


def test_same_seed_gives_identical_numbers():
    x = np.random.default_rng(5).uniform(size=(7, 9)).astype(np.float32)
    runs = []
    for _ in range(2):
        model = VAE(9, hidden_dims=(6,), latent_dim=2, seed=42)
        loss, grads, _ = model.loss_and_grads(x)  # eps from the model's own generator
        runs.append((model.params, loss, grads, model.sample(4)))
    (p1, l1, g1, s1), (p2, l2, g2, s2) = runs
    assert l1 == l2 and np.array_equal(s1, s2)
    assert all(np.array_equal(p1[k], p2[k]) and np.array_equal(g1[k], g2[k]) for k in p1)
    other = VAE(9, hidden_dims=(6,), latent_dim=2, seed=43)
    assert not np.array_equal(other.params["out.W"], p1["out.W"])


def test_eps_drawn_from_rng_argument_when_given():
    x = np.full((3, 4), 0.5, np.float32)
    model = VAE(4, hidden_dims=(3,), latent_dim=2, seed=0)
    a = model.loss_and_grads(x, rng=np.random.default_rng(9))[0]
    b = model.loss_and_grads(x, rng=np.random.default_rng(9))[0]
    eps = np.random.default_rng(9).standard_normal((3, 2), dtype=np.float32)
    assert a == b == model.loss_and_grads(x, eps)[0]


def test_decode_returns_mean_of_p_x_given_z():
    model = VAE(4, hidden_dims=(3,), latent_dim=2, seed=0, dtype=np.float64)
    z = np.random.default_rng(0).standard_normal((5, 2))
    probs = model.decode(z)
    assert np.all((probs > 0) & (probs < 1))
    heads, _ = model._decode_forward(z)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-heads[0])))


def test_iwae_with_one_sample_is_the_sampled_elbo():
    """K = 1: -log w = NLL + log q(z|x) - log p(z), the ELBO with a sampled, not closed-form, KL."""
    rng = np.random.default_rng(0)
    model = VAE(5, hidden_dims=(4,), latent_dim=2, dtype=np.float64, seed=0)
    x, eps = rng.uniform(size=(3, 5)), rng.standard_normal((1, 3, 2))
    loss, _, _ = model.loss_and_grads(x, eps, objective="iwae")
    assert loss == pytest.approx(-model.log_weights(x, eps).mean(), rel=1e-12)


def test_training_smoke_adam_lowers_the_negative_elbo():
    """A few hundred Adam steps on small synthetic binary data clearly lower the loss."""
    rng = np.random.default_rng(0)
    x = binary_data(512, 24, rng)
    model = VAE(24, hidden_dims=(32,), latent_dim=4, seed=0)
    opt = Adam(model.params, lr=3e-3)
    eval_eps = np.random.default_rng(1).standard_normal((512, 4), dtype=np.float32)
    start = model.loss_and_grads(x, eval_eps)[0]
    for _ in range(300):
        batch = x[rng.integers(len(x), size=64)]
        loss, grads, _ = model.loss_and_grads(batch, rng=rng)
        opt.step(grads)
    end = model.loss_and_grads(x, eval_eps)[0]
    assert end < 0.6 * start, (start, end)
    kl = kl_standard_normal(*model.encode(x))[0].mean()
    assert kl > 0.5  # the latent code is used, not collapsed onto the prior
