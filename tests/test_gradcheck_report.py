"""``npvae gradcheck``: the objective checks hold the loss values to independent references,
and every planted bug is caught (``--plant``), by the kind of check the lesson says."""

import numpy as np
import pytest

from npvae.run import cli
from npvae.verify import objective_checks
from npvae.verify import plants


def test_every_objective_check_passes_and_is_independent():
    checks = objective_checks.objective_checks()
    assert len(checks) >= 12
    for c in checks:
        assert c.ok, (c.name, c.value, c.reference, c.tol)
        assert c.tol < 0.1 * max(1.0, abs(c.reference))  # tight enough to mean something


def test_the_exact_posterior_vae_makes_every_weight_p_x():
    model = objective_checks.exact_posterior_vae()
    x = np.random.default_rng(0).standard_normal((2, model.input_dim))
    eps = np.random.default_rng(1).standard_normal((6, 2, model.latent_dim))
    log_w = model.log_weights(x, eps)  # (K, B): the same for every sample
    np.testing.assert_allclose(log_w, np.broadcast_to(log_w[:1], log_w.shape), atol=1e-10)


@pytest.mark.parametrize("bug, caught_by", [
    ("kl-half", "objective"),
    ("variance-as-std", "objective"),
    ("clamp-mask", "gradient"),
    ("bias-sign", "gradient"),
    ("kl-missing-1/B", "gradient"),
])
def test_every_planted_bug_is_caught(capsys, bug, caught_by):
    assert cli.main(["gradcheck", "--plant", bug]) == 0
    out = capsys.readouterr().out
    assert f"planted bug {bug!r}" in out and "NOT CAUGHT" not in out
    assert f"  {caught_by:9s} " in out  # at least one check of the expected kind fails


def test_variance_as_std_passes_every_gradient_check(capsys):
    """The trap the style guide names: a consistent forward and backward that are both wrong
    are invisible to finite differences; only the objective checks see them."""
    cli.main(["gradcheck", "--plant", "variance-as-std"])
    assert "caught by 5 objective and 0 gradient check(s)" in capsys.readouterr().out


def test_plants_restore_the_right_functions():
    from npvae.core import distributions
    from npvae.core import layers
    from npvae.core import vae
    before = (distributions.kl_standard_normal, vae.kl_standard_normal, layers.clamp_backward,
              vae.clamp_backward, vae.reparameterize_forward)
    for name in plants.PLANTS:
        with plants.planted(name):
            pass
    assert before == (distributions.kl_standard_normal, vae.kl_standard_normal,
                      layers.clamp_backward, vae.clamp_backward, vae.reparameterize_forward)
    with pytest.raises(ValueError, match="unknown plant 'nope'"):
        with plants.planted("nope"):
            pass


def test_a_clean_run_exits_0_and_reports_both_kinds(capsys):
    assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "gradients checked, 0 failed" in out and "objective checks, 0 failed" in out
    assert "both clamps binding" in out and "decoder clamp binds" in out
    assert "FullCovarianceVAE: bernoulli, tanh, K=1" in out  # issue 22.7's sections
    assert "kl_full_standard_normal" in out and "full_reparameterize cov[1,0]" in out
