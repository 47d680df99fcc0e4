"""M2 (the semi-supervised VAE), M1, and hiding labels: gradients, values, training, errors."""

import numpy as np
import pytest
import scipy.special

import npvae
from npvae.models.m2 import SemiSupervisedVAE
from npvae.run.semi_supervised import train_m1, train_m1_m2, train_m2
from npvae.study.semi_supervised import (M1, accuracy, hide_labels, oversample_labelled,
                                         posterior_means)
from npvae.verify.gradcheck import model_checks

D, C, Z = 6, 3, 3


def _m2(**kwargs):
    defaults = dict(hidden_dims=(5,), latent_dim=Z, activation="tanh", classifier_dims=(4,),
                    alpha=0.7, dtype=np.float64, seed=0)
    return SemiSupervisedVAE(D, C, **{**defaults, **kwargs})


def _batch(B=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(B, D)) < 0.5).astype(np.float64), rng


@pytest.mark.parametrize("labels", [[0, 1, 2, 1], [-1, -1, -1, -1], [0, -1, 2, -1]],
                         ids=["labelled", "unlabelled", "mixed"])
@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("kwargs", [{}, dict(activation="relu", classifier_dims=(),
                                             likelihood="gaussian", hidden_dims=(6, 5))],
                         ids=["tanh", "relu-gaussian-linear-classifier"])
def test_every_parameter_matches_finite_differences(labels, K, kwargs):
    model = _m2(**kwargs)
    x, rng = _batch()
    for name in model.params:  # biases off 0: a ReLU whose inputs are all 0 sits on its kink
        if name.endswith(".b"):
            model.params[name] += 0.1 * rng.standard_normal(model.params[name].shape)
    if model.config.likelihood == "gaussian":
        x = rng.standard_normal((4, D))
    eps = rng.standard_normal((K, 4, Z) if K > 1 else (4, Z))
    for check in model_checks(model, x, np.array(labels), eps, beta=0.8):
        assert check.ok, (check.name, check.error)


def _cvae_twin(model):
    """A CVAE with M2's generative weights: its loss is M2's L(x, y)."""
    cvae = npvae.CVAE(D, C, hidden_dims=(5,), latent_dim=Z, activation="tanh",
                      dtype=np.float64)
    for name in cvae.params:
        cvae.params[name][...] = model.params[name]
    return cvae


def test_loss_is_the_bound_of_the_paper_against_an_independent_cvae():
    """labelled: L(x, y) + alpha · CE; unlabelled: Σ_c q(c|x) L(x, c) - H(q(y|x)), with L the
    CVAE's negative ELBO and q from the classifier, averaged over the batch."""
    model = _m2()
    cvae = _cvae_twin(model)
    x, rng = _batch()
    y, eps = np.array([2, -1, 0, -1]), rng.standard_normal((4, Z))
    q = model.predict_proba(x)  # (B, C)

    def L(b, c):
        return cvae.loss_and_grads(x[b:b + 1], np.array([c]), eps=eps[b:b + 1])[0]

    per_example = []
    for b in range(4):
        if y[b] >= 0:
            per_example.append(L(b, y[b]) - 0.7 * np.log(q[b, y[b]]))
        else:
            per_example.append(sum(q[b, c] * (L(b, c) + np.log(q[b, c])) for c in range(C)))
    assert model.loss_and_grads(x, y, eps=eps)[0] == pytest.approx(np.mean(per_example),
                                                                    rel=1e-12)
    entropy = -(q[[1, 3]] * np.log(q[[1, 3]])).sum(axis=1).mean()
    assert model.loss_and_grads(x, y, eps=eps)[2]["entropy"] == pytest.approx(entropy)


def test_all_labelled_with_alpha_0_is_the_cvae_exactly():
    model = _m2(alpha=0.0)
    cvae = _cvae_twin(model)
    x, rng = _batch(6)
    y, eps = rng.integers(0, C, 6), rng.standard_normal((2, 6, Z))
    loss, grads, _ = model.loss_and_grads(x, y, eps=eps, beta=0.6)
    loss_c, grads_c, _ = cvae.loss_and_grads(x, y, eps=eps, beta=0.6)
    assert loss == pytest.approx(loss_c, rel=1e-12)
    for name in grads_c:
        np.testing.assert_allclose(grads[name], grads_c[name], rtol=1e-10, atol=1e-14)
    for name in ("classifier.0.W", "logits.W", "logits.b"):  # no path to the classifier
        assert not grads[name].any()


def test_the_unlabelled_gradient_moves_q_towards_the_class_that_explains_x_best():
    """∂U/∂logits_c = q_c (L_c + log q_c - U): with q uniform, the class of lowest L gets the
    most negative gradient, so a step of descent raises its probability."""
    model = _m2(classifier_dims=())
    model.params["logits.W"][...] = 0  # q(y|x) uniform
    x, rng = _batch(1)
    eps = rng.standard_normal((1, Z))
    L = [_cvae_twin(model).loss_and_grads(x, np.array([c]), eps=eps)[0] for c in range(C)]
    _, grads, _ = model.loss_and_grads(x, np.array([-1]), eps=eps)
    np.testing.assert_allclose(grads["logits.b"], (np.array(L) - np.mean(L)) / C, rtol=1e-10)


def test_the_per_example_loss_does_not_depend_on_the_batch():
    model = _m2()
    x, rng = _batch(5)
    y, eps = np.array([0, -1, 2, -1, -1]), rng.standard_normal((5, Z))
    singles = [model.loss_and_grads(x[i:i + 1], y[i:i + 1], eps=eps[i:i + 1])[0]
               for i in range(5)]
    assert model.loss_and_grads(x, y, eps=eps)[0] == pytest.approx(np.mean(singles), rel=1e-12)


def test_hide_labels_keeps_a_balanced_random_subset():
    y = np.repeat(np.arange(4), 25)
    out = hide_labels(y, 10, np.random.default_rng(0))
    kept = out >= 0
    assert kept.sum() == 10 and (out[kept] == y[kept]).all() and (out[~kept] == -1).all()
    assert sorted(np.bincount(out[kept], minlength=4)) == [2, 2, 3, 3]
    other = hide_labels(y, 10, np.random.default_rng(1))
    assert not np.array_equal(out, other)
    np.testing.assert_array_equal(hide_labels(y, 100, np.random.default_rng(0)), y)
    with pytest.raises(ValueError, match="one label per class"):
        hide_labels(y, 3, np.random.default_rng(0))


def test_oversampling_repeats_only_the_labelled_examples():
    x = np.arange(10.0)[:, None]
    y = np.array([-1, 0, -1, 1, -1, -1, -1, -1, -1, -1])
    x2, y2 = oversample_labelled(x, y, 3)
    assert len(x2) == 8 + 6 and (y2 >= 0).sum() == 6
    assert sorted(x2[y2 >= 0, 0]) == [1, 1, 1, 3, 3, 3]


def _toy(n, rng):
    """Three classes of binary images, each with its own block of pixels on."""
    y = rng.integers(0, C, n)
    probs = np.full((n, D), 0.05)
    for c in range(C):
        probs[y == c, 2 * c:2 * c + 2] = 0.95
    return (rng.uniform(size=(n, D)) < probs).astype(np.float32), y


def test_m2_trains_through_npvae_train_with_minus_ones_and_saves(tmp_path):
    rng = np.random.default_rng(0)
    x, y = _toy(300, rng)
    x_test, y_test = _toy(200, rng)
    y_partial = hide_labels(y, 6, rng)
    model = SemiSupervisedVAE(D, C, hidden_dims=(16,), latent_dim=2, classifier_dims=(8,),
                              alpha=5.0, seed=0)
    x2, y2 = oversample_labelled(x, y_partial, 10)
    history = npvae.train(model, x2, y=y2, epochs=6, batch_size=30, lr=3e-3, verbose=False,
                          out_dir=tmp_path / "m2")
    assert history[-1]["loss"] < history[0]["loss"]
    assert accuracy(model, x_test, y_test) > 0.9
    loaded = npvae.load(tmp_path / "m2")
    assert type(loaded) is SemiSupervisedVAE and loaded.config == model.config
    np.testing.assert_array_equal(loaded.predict(x_test), model.predict(x_test))
    samples = model.sample(np.array([0, 1, 2, 2]), rng=np.random.default_rng(0))
    assert samples.shape == (4, D) and ((samples >= 0) & (samples <= 1)).all()
    np.testing.assert_allclose(model.predict_proba(x_test).sum(axis=1), 1, rtol=1e-5)


def test_m1_classifies_from_the_posterior_means():
    rng = np.random.default_rng(1)
    x, y = _toy(300, rng)
    x_test, y_test = _toy(200, rng)
    vae = npvae.VAE(D, hidden_dims=(16,), latent_dim=2, seed=0)
    m1 = train_m1(x, hide_labels(y, 9, rng), vae=vae, vae_epochs=15, classifier_epochs=100,
                  batch_size=30, lr=3e-3, rng=np.random.default_rng(2))
    assert isinstance(m1, M1) and m1.classifier.input_dim == 2
    np.testing.assert_allclose(m1.features(x_test), posterior_means(vae, x_test))
    assert accuracy(m1, x_test, y_test) > 0.8  # chance: 1/3; the Bayes classifier ~0.98


def test_m1_m2_is_m2_trained_and_scored_on_the_vaes_posterior_means():
    rng = np.random.default_rng(3)
    x, y = _toy(300, rng)
    x_test, y_test = _toy(200, rng)
    y_partial = hide_labels(y, 9, rng)
    vae = npvae.VAE(D, hidden_dims=(16,), latent_dim=2, seed=0)
    npvae.train(vae, x, epochs=15, batch_size=30, lr=3e-3, binarize="dynamic",
                rng=np.random.default_rng(4), verbose=False)

    def m2():
        return SemiSupervisedVAE(2, C, hidden_dims=(8,), latent_dim=2, classifier_dims=(8,),
                                 likelihood="gaussian-learned", alpha=30.0, seed=0)

    model = train_m1_m2(x, y_partial, vae=vae, m2=m2(), vae_epochs=0, m2_epochs=20,
                        repeat_labelled=5, batch_size=30, m2_lr=3e-3,
                        rng=np.random.default_rng(5))
    # The same M2 trained by hand on the posterior means, with the same Generator: the same
    # weights, and the wrapper predicts with its q(y | mu(x)).
    direct = m2()
    train_m2(direct, posterior_means(vae, x), y_partial, epochs=20, repeat_labelled=5,
             batch_size=30, lr=3e-3, binarize=None, rng=np.random.default_rng(5))
    assert isinstance(model, M1) and model.vae is vae and model.classifier is not direct
    for name, value in direct.params.items():
        np.testing.assert_array_equal(model.classifier.params[name], value, err_msg=name)
    np.testing.assert_array_equal(model.predict(x_test),
                                  direct.predict(posterior_means(vae, x_test)))
    np.testing.assert_allclose(model.predict_proba(x_test),
                               direct.predict_proba(posterior_means(vae, x_test)), rtol=1e-6)
    assert accuracy(model, x_test, y_test) > 0.8  # chance: 1/3
    with pytest.raises(ValueError, match="gaussian-learned"):
        train_m1_m2(x, y_partial, vae=vae, m2=SemiSupervisedVAE(2, C), vae_epochs=0)


def test_train_m2_helper_and_clear_errors():
    rng = np.random.default_rng(2)
    x, y = _toy(60, rng)
    model = SemiSupervisedVAE(D, C, hidden_dims=(4,), latent_dim=2, classifier_dims=(),
                              seed=0)
    history = train_m2(model, x, hide_labels(y, 6, rng), epochs=1, repeat_labelled=2,
                       batch_size=20)
    assert len(history) == 1
    with pytest.raises(ValueError, match="-1 for"):
        model.loss_and_grads(x[:2], np.array([0, -2]))
    with pytest.raises(ValueError, match="ELBO only"):
        model.loss_and_grads(x[:2], np.array([0, 1]), objective="iwae")
    with pytest.raises(ValueError, match="labels must be in"):  # a CVAE refuses -1
        npvae.train(npvae.CVAE(D, C, hidden_dims=(4,), latent_dim=2), x,
                    y=np.full(len(x), -1), epochs=1, verbose=False)
    with pytest.raises(ValueError, match="alpha"):
        SemiSupervisedVAE(D, C, alpha=-1.0)
    with pytest.raises(ValueError, match="classifier_dims"):
        SemiSupervisedVAE(D, C, classifier_dims=4)
    with pytest.raises(ValueError, match="no labels"):
        train_m1(x, np.full(len(x), -1), vae=npvae.VAE(D, latent_dim=2), vae_epochs=0)


def test_predict_proba_is_the_softmax_of_the_classifier():
    model = _m2(classifier_dims=())
    x, _ = _batch(3)
    logits = x @ model.params["logits.W"] + model.params["logits.b"]
    np.testing.assert_allclose(model.predict_proba(x), scipy.special.softmax(logits, axis=1))


@pytest.mark.parametrize("y", [[2, -1, 0, -1], [-1, -1, -1, -1], [0, 1, 2, 1]],
                         ids=["mixed", "unlabelled", "labelled"])
def test_the_stats_are_the_losss_terms_per_example(y):
    """recon and kl are the weighted sums Σ_r w_r NLL_r / B and Σ_r w_r KL_r / B (beta = 1),
    ce the labelled examples' mean cross-entropy, entropy the unlabelled ones' mean H(q); so
    loss = recon + kl + (alpha · B_l · ce − B_u · entropy) / B, and a term with no examples
    is 0."""
    model = _m2()
    cvae = _cvae_twin(model)
    x, rng = _batch()
    y, eps = np.array(y), rng.standard_normal((4, Z))
    q = model.predict_proba(x)  # (B, C)
    lab, unl = np.flatnonzero(y >= 0), np.flatnonzero(y < 0)
    rows = [(b, y[b], 1.0) for b in lab] + [(b, c, q[b, c]) for b in unl for c in range(C)]
    terms = np.array([[w, *(t[0] for t in cvae.elbo_terms(x[b:b + 1], np.array([c]),
                                                          eps[b:b + 1]))]
                      for b, c, w in rows])  # (R, 3): weight, NLL, KL
    loss, _, stats = model.loss_and_grads(x, y, eps=eps)
    assert stats["recon"] == pytest.approx(terms[:, 0] @ terms[:, 1] / 4, rel=1e-12)
    assert stats["kl"] == pytest.approx(terms[:, 0] @ terms[:, 2] / 4, rel=1e-12)
    ce = -np.log(q[lab, y[lab]]).mean() if len(lab) else 0.0
    entropy = -(q[unl] * np.log(q[unl])).sum(axis=1).mean() if len(unl) else 0.0
    assert stats["ce"] == pytest.approx(ce, abs=1e-12)
    assert stats["entropy"] == pytest.approx(entropy, abs=1e-12)
    assert stats["labelled"] == len(lab)
    assert loss == pytest.approx(stats["recon"] + stats["kl"] + (
        0.7 * len(lab) * ce - len(unl) * entropy) / 4, rel=1e-12)
