"""The conditional VAE: every gradient by finite differences, the label plumbing, the errors."""

import numpy as np
import pytest

import npvae
from npvae import VAE
from npvae.verify import gradcheck
from npvae.models.cvae import CVAE, CVAEConfig
from npvae.verify.gradcheck import MODEL_TOL, model_checks

C = 3


def _case(vae_kwargs, L, seed=4):
    model, x, eps = gradcheck.small_model_case(
        {"n_classes": C, "activation": "tanh", **vae_kwargs}, L, seed=seed, model_cls=CVAE)
    y = np.array([2, 0, 2, 1])  # (B,): every class, one twice
    return model, x, y, eps


# (CVAE kwargs, loss kwargs, L): each likelihood, no hidden layer and two, IWAE and free bits.
CASES = [
    (dict(likelihood="bernoulli"), {}, 1),
    (dict(likelihood="gaussian", sigma=0.7), dict(beta=0.5), 3),
    (dict(likelihood="gaussian-learned", hidden_dims=()), {}, 2),
    (dict(likelihood="bernoulli", hidden_dims=()), dict(objective="iwae"), 3),
    (dict(likelihood="gaussian", hidden_dims=(5, 4), activation="softplus"),
     dict(objective="iwae"), 4),
    (dict(likelihood="gaussian"), dict(free_bits=0.05), 2),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-L{c[2]}" for c in CASES])
def test_every_parameter_of_small_cvae(case):
    vae_kwargs, loss_kwargs, L = case
    model, x, y, eps = _case(vae_kwargs, L)
    checks = model_checks(model, x, y, eps, **loss_kwargs)
    assert [c.name for c in checks] == list(model.params)
    for c in checks:
        assert c.error < MODEL_TOL, f"{c.name}: relative error {c.error:.2e}"


def test_first_layers_take_the_label():
    deep = CVAE(6, C, hidden_dims=(5, 4), latent_dim=2, seed=0)
    assert deep.params["encoder.0.W"].shape == (6 + C, 5)
    assert deep.params["decoder.0.W"].shape == (2 + C, 4)
    assert deep.params["out.W"].shape == (5, 6)  # only the first layers change
    linear = CVAE(6, C, hidden_dims=(), latent_dim=2, likelihood="gaussian-learned", seed=0)
    for name in ("mu.W", "logvar.W"):
        assert linear.params[name].shape == (6 + C, 2)
    for name in ("out.W", "out_logvar.W"):
        assert linear.params[name].shape == (2 + C, 6)
    assert list(deep.params) == list(VAE(6, hidden_dims=(5, 4), latent_dim=2).params)


@pytest.mark.parametrize("hidden", [(5,), ()])
def test_cvae_with_silent_label_rows_is_the_vae(hidden):
    """With the label's rows of the first layers zeroed, [x, onehot] W = x W_x: the CVAE is the
    VAE with the remaining weights, in loss and in every gradient; the label rows' gradient is
    the sum of the first layer's input gradient over the examples of each class."""
    model, x, y, eps = _case(dict(likelihood="gaussian-learned", hidden_dims=hidden), 2)
    vae = VAE(6, hidden_dims=hidden, latent_dim=3, likelihood="gaussian-learned",
              activation="tanh", dtype=np.float64)
    first = {"encoder.0.W", "decoder.0.W"} if hidden else {"mu.W", "logvar.W", "out.W",
                                                           "out_logvar.W"}
    for name, p in model.params.items():
        if name in first:
            p[-C:] = 0.0
            vae.params[name][...] = p[:-C]
        else:
            vae.params[name][...] = p
    loss, grads, _ = model.loss_and_grads(x, y, eps)
    vae_loss, vae_grads, _ = vae.loss_and_grads(x, eps)
    assert loss == pytest.approx(vae_loss, rel=1e-13)
    for name, g in grads.items():
        g_shared = g[:-C] if name in first else g
        np.testing.assert_allclose(g_shared, vae_grads[name], rtol=1e-10, atol=1e-14)
    # Class 0 appears once, at b = 1: its label row's gradient is the encoder's dpre of that
    # example, which is nonzero; had class 0 been absent, it would be exactly zero.
    model2, x2, _, eps2 = _case(dict(likelihood="gaussian-learned", hidden_dims=hidden), 2)
    _, grads2, _ = model2.loss_and_grads(x2, np.array([2, 1, 2, 1]), eps2)
    W = "encoder.0.W" if hidden else "mu.W"
    assert np.all(grads2[W][-C] == 0.0) and np.all(grads2[W][-C + 1:] != 0.0)


def test_the_label_changes_the_encoding_and_the_decoding():
    model, x, y, _ = _case(dict(likelihood="bernoulli"), 1)
    z = np.random.default_rng(0).standard_normal((4, 3))
    same, other = model.decode(z, y), model.decode(z, (y + 1) % C)
    assert same.shape == (4, 6) and np.all((same > 0) & (same < 1))
    assert np.abs(same - other).max() > 1e-3
    assert np.abs(model.encode(x, y)[0] - model.encode(x, (y + 1) % C)[0]).max() > 1e-3
    np.testing.assert_array_equal(model.reconstruct(x, y), model.decode(model.encode(x, y)[0], y))


def test_sample_labels_and_rng():
    model = CVAE(6, C, hidden_dims=(5,), latent_dim=2, seed=0)
    images = model.sample(7, rng=np.random.default_rng(1))
    assert images.shape == (7, 6) and images.dtype == np.float32
    z = np.random.default_rng(1).standard_normal((7, 2), dtype=np.float32)
    np.testing.assert_array_equal(images, model.decode(z, np.arange(7) % C))
    labels = np.array([2, 2, 0])
    np.testing.assert_array_equal(model.sample(labels, rng=np.random.default_rng(2)),
                                  model.decode(np.random.default_rng(2).standard_normal(
                                      (3, 2), dtype=np.float32), labels))


def test_float32_is_kept_and_eps_is_drawn():
    model = CVAE(6, C, hidden_dims=(5,), latent_dim=2, seed=0)
    x = np.random.default_rng(0).uniform(size=(4, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 0], dtype=np.uint8)  # data.load gives uint8 labels
    loss, grads, stats = model.loss_and_grads(x, y, k=3, objective="iwae",
                                              rng=np.random.default_rng(5))
    assert np.isfinite(loss) and set(stats) >= {"loss", "recon", "kl"}
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(a.dtype == np.float32 for a in model.encode(x, y))
    again, _, _ = model.loss_and_grads(x, y, k=3, objective="iwae", rng=np.random.default_rng(5))
    assert again == loss


def test_config_round_trip_and_seed():
    model = CVAE(6, 4, hidden_dims=(5,), latent_dim=2, likelihood="gaussian", seed=3)
    assert model.config.n_classes == 4 and model.config.to_dict()["n_classes"] == 4
    for config in (model.config, model.config.to_dict()):
        twin = CVAE.from_config(config, seed=3)
        assert twin.config == model.config
        for name, p in model.params.items():
            np.testing.assert_array_equal(twin.params[name], p)
    with pytest.raises(TypeError, match="n_classes"):
        CVAEConfig(6)  # a VAE's config is not enough
    with pytest.raises(ValueError, match="n_classes must be an integer ≥ 2"):
        CVAE(6, 1)
    with pytest.raises(ValueError, match="n_classes must be an integer ≥ 2"):
        CVAE(6, 2.5)


@pytest.mark.parametrize("y, error, message", [
    (np.array([0.0, 1.0, 2.0, 0.0]), TypeError, "labels must be integers"),
    (np.eye(C)[[0, 1, 2, 0]].astype(int), ValueError, "argmax"),
    (np.array([0, 1, 3, 0]), ValueError, r"labels must be in \[0, 3\)"),
    (np.array([0, -1, 2, 0]), ValueError, r"labels must be in \[0, 3\)"),
    (np.array([0, 1, 2]), ValueError, "one label per example"),
])
def test_bad_labels_are_refused_clearly(y, error, message):
    model = CVAE(6, C, hidden_dims=(5,), latent_dim=2, seed=0)
    x = np.full((4, 6), 0.5, dtype=np.float32)
    for call in (lambda: model.loss_and_grads(x, y), lambda: model.encode(x, y),
                 lambda: model.reconstruct(x, y)):
        with pytest.raises(error, match=message):
            call()


def test_the_vae_methods_need_the_labels():
    model = CVAE(6, C, hidden_dims=(5,), latent_dim=2, seed=0)
    x = np.full((4, 6), 0.5, dtype=np.float32)
    with pytest.raises(TypeError):
        model.loss_and_grads(x)
    for bypass in (VAE.encode, VAE.loss_and_grads):  # the VAE's own, bypassing the CVAE's
        with pytest.raises(TypeError, match="conditional .3 classes.: pass the labels y"):
            bypass(model, x)
    with pytest.raises(ValueError, match=r"cond has shape \(4, 2\); expected \(B, C\) = \(4, 3\)"):
        VAE.loss_and_grads(model, x, cond=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="a plain VAE takes no condition"):
        VAE(6, hidden_dims=(5,), latent_dim=2).loss_and_grads(x, cond=np.zeros((4, 3)))


def test_log_weights_and_nll_take_the_labels():
    model = CVAE(6, 3, hidden_dims=(4,), latent_dim=2, seed=0)
    x = np.full((4, 6), 0.5, np.float32)
    eps = np.random.default_rng(0).standard_normal((2, 4, 2), dtype=np.float32)
    y = np.array([0, 1, 2, 0])
    log_w = model.log_weights(x, y, eps)
    nll = model.nll(x, y, eps)
    assert nll.shape == (2, 4) and np.all(nll > 0)
    mu, logvar = model.encode(x, y)
    from npvae.core.distributions import gaussian_log_density, standard_normal_log_density
    z = mu + np.exp(logvar / 2) * eps
    expected = -nll + standard_normal_log_density(z)[0] - gaussian_log_density(z, mu, logvar)[0]
    np.testing.assert_allclose(log_w, expected, rtol=1e-5)


@pytest.mark.parametrize("K", [2, 3])
def test_each_of_k_samples_is_decoded_with_its_own_label(K):
    """With K samples of z per example, the NLL of sample k of example b is the NLL of that
    sample alone: each decoder row is joined to the label of its own example (the condition
    is tiled K times, row k·B + b taking y_b; repeating it instead would mix the labels)."""
    model = CVAE(6, 3, hidden_dims=(5,), latent_dim=2, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    x = (rng.uniform(size=(4, 6)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 2, 1])
    eps = rng.standard_normal((K, 4, 2))
    together = model.nll(x, y, eps)  # (K, B)
    alone = np.stack([model.nll(x, y, eps[k]) for k in range(K)])  # (K, B)
    np.testing.assert_allclose(together, alone, rtol=1e-12)


def _separable_data(n_per_class=60, D=12, seed=0):
    """Three classes, each a bright block in its own third of the pixels, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    x = rng.uniform(0, 0.15, (len(y), D))
    for c in range(3):
        x[y == c, 4 * c:4 * c + 4] = 0.9
    return (rng.uniform(size=x.shape) < x).astype(np.float32), y


def test_log_likelihood_is_the_importance_weighted_estimate_of_log_p_x_given_y():
    from npvae.study import evaluate
    model = CVAE(12, 3, hidden_dims=(8,), latent_dim=2, seed=0)
    x, y = _separable_data()
    ours = evaluate.log_likelihood(model, x[:5], k=50, rng=np.random.default_rng(1), y=y[:5])
    assert ours.shape == (5,) and np.all(ours < 0)
    # log p(x|y) = log Σ_y' ... is not log p(x): another label gives another value
    other = evaluate.log_likelihood(model, x[:5], k=50, rng=np.random.default_rng(1),
                                    y=(y[:5] + 1) % 3)
    assert not np.allclose(ours, other)


def test_a_trained_cvae_classifies_by_bayes_rule():
    x, y = _separable_data()
    model = CVAE(12, 3, hidden_dims=(16,), latent_dim=2, seed=0)
    npvae.train(model, x, y=y, epochs=30, batch_size=30, lr=1e-2, verbose=False)
    x_test, y_test = _separable_data(seed=1)
    labels, log_post = npvae.evaluate.classify(model, x_test, k=20, rng=np.random.default_rng(0))
    assert labels.shape == (len(x_test),) and log_post.shape == (len(x_test), 3)
    np.testing.assert_allclose(np.exp(log_post).sum(axis=1), 1, rtol=1e-9)
    assert (labels == y_test).mean() > 0.9
    # A prior that puts no mass on class 0 never predicts it.
    labels, _ = npvae.evaluate.classify(model, x_test, k=20, rng=np.random.default_rng(0), prior=[0, 0.5, 0.5])
    assert not np.any(labels == 0)
    with pytest.raises(ValueError, match="class probabilities that sum to 1"):
        npvae.evaluate.classify(model, x_test, prior=[0.5, 0.5])


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_the_loss_with_k_samples_joins_each_to_its_own_label(objective):
    """The loss's own forward (not only ``nll``) tiles the condition: with K samples, the ELBO
    and its gradient are the mean over k of the K = 1 ones, and the IWAE bound of one example
    at a time (a batch of one has no labels to mix) adds up to the batch's."""
    model = CVAE(6, 3, hidden_dims=(5,), latent_dim=2, dtype=np.float64, seed=0)
    rng = np.random.default_rng(2)
    x = (rng.uniform(size=(4, 6)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 2, 1])
    eps = rng.standard_normal((3, 4, 2))
    loss, grads, _ = model.loss_and_grads(x, y, eps, objective=objective)
    if objective == "elbo":
        singles = [model.loss_and_grads(x, y, eps[k]) for k in range(3)]
    else:
        singles = [model.loss_and_grads(x[b:b + 1], y[b:b + 1], eps[:, b:b + 1],
                                        objective="iwae") for b in range(4)]
    assert loss == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(g, np.mean([s[1][name] for s in singles], axis=0),
                                   rtol=1e-10, atol=1e-14, err_msg=name)
