"""The documents agree with the code, and docs/gradients.md is executed:

- every "`A` in `B`" cell of the derivation is a call of A made by B on the loss's path;
- every function the derivation and the README's gradient map name exists;
- the chain of "One weight, end to end" computed with the primitives is the model's gradient;
- the IWAE score-term numbers are what a Monte Carlo gives;
- the README's sample of ``npvae gradcheck`` is what the command prints.
"""

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.core import distributions as dist
from npvae.core import layers
from npvae.run import cli

ROOT = Path(__file__).resolve().parents[1]
DERIVATION = (ROOT / "docs" / "gradients.md").read_text()
README = (ROOT / "README.md").read_text()

# The roots a dotted name in the documents may start with, and where each lives.
ROOTS = {"layers": npvae.layers, "distributions": npvae.distributions, "checks": npvae.checks,
         "optim": npvae.optim, "verify": npvae.verify, "VAE": npvae.VAE, "CVAE": npvae.CVAE,
         "HVAE": npvae.HVAE, "evaluate": npvae.evaluate, "inference": npvae.inference}


def resolve(name):
    """The object a dotted name such as "layers.dense_forward" or "VAE._nll" names, or None."""
    root, *parts = name.split(".")
    obj = ROOTS.get(root)
    for part in parts:
        if isinstance(obj, type(npvae)) and not hasattr(obj, part):  # a submodule not yet loaded
            importlib.import_module(f"{obj.__name__}.{part}")
        obj = getattr(obj, part, None)
    return obj


def named(text):
    """Every backticked dotted name in ``text`` that starts with a known root."""
    names = re.findall(r"`((?:[A-Za-z_]+\.)+[A-Za-z_]+)`", text)
    return sorted({n for n in names if n.split(".")[0] in ROOTS})


CALLS = sorted(set(re.findall(r"`([\w.]+)` in `([\w.]+)`", DERIVATION)))


def test_the_derivation_names_each_step():
    assert len(CALLS) >= 15 and len(named(DERIVATION)) >= 25
    for step in ("VAE.loss_and_grads", "VAE._nll", "layers.mlp_backward",
                 "distributions.reparameterize_backward", "distributions.kl_standard_normal",
                 "VAE._iwae_loss_and_grads", "distributions.free_bits_kl", "layers.clamp_backward",
                 "layers.dense_backward", "optim.Adam.step", "HVAE._hierarchy_backward"):
        assert step in named(DERIVATION), step


@pytest.mark.parametrize("name", named(DERIVATION))
def test_every_function_the_derivation_names_exists(name):
    assert callable(resolve(name)), name


def traced_calls(model, *args, **kwargs):
    """(caller, callee) code objects of every npvae call made by one loss_and_grads."""
    pairs = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_back is not None:
            pairs.add((frame.f_back.f_code, frame.f_code))

    sys.setprofile(profile)
    try:
        model.loss_and_grads(*args, **kwargs)
    finally:
        sys.setprofile(None)
    return pairs


@pytest.fixture(scope="module")
def calls_on_the_path():
    """The calls of the default model's loss (one hidden ReLU layer each side, K = 2) for
    each likelihood."""
    rng = np.random.default_rng(0)
    pairs = set()
    for likelihood in ("bernoulli", "gaussian", "gaussian-learned"):
        model = npvae.VAE(6, (5,), 3, likelihood=likelihood, dtype=np.float64, seed=0)
        x = (rng.random((4, 6)) < 0.5).astype(np.float64)
        pairs |= traced_calls(model, x, rng.standard_normal((2, 4, 3)))
    return pairs


@pytest.mark.parametrize("callee, caller", CALLS, ids=lambda v: v)
def test_every_computed_by_cell_is_a_call_on_the_path(callee, caller, calls_on_the_path):
    """"`A` in `B`": B really calls A when the loss runs (not only: both exist)."""
    assert callable(resolve(callee)) and callable(resolve(caller)), (callee, caller)
    assert (resolve(caller).__code__, resolve(callee).__code__) in calls_on_the_path, \
        f"{caller} does not call {callee} on the loss's path"


def test_the_scalings_are_applied_where_the_derivation_says():
    import inspect
    source = inspect.getsource(npvae.VAE.loss_and_grads)
    for code in ("scale = 1.0 / (K * B)", "kl_scale = beta / B"):
        assert f"`{code}`" in DERIVATION and code in source, code


def test_one_weight_end_to_end():
    """The five lines of "One weight, end to end: logvar.W", with the primitives."""
    rng = np.random.default_rng(3)
    B, D, H, Z = 5, 8, 6, 3
    model = npvae.VAE(D, (H,), Z, dtype=np.float64, seed=1)
    p = model.params
    x = (rng.random((B, D)) < 0.5).astype(np.float64)
    eps = rng.standard_normal((B, Z))
    # the forward, as in section 1
    a_enc, enc_cache = layers.dense_forward(x, p["encoder.0.W"], p["encoder.0.b"])
    h_enc, _ = layers.relu_forward(a_enc)
    mu, _ = layers.dense_forward(h_enc, p["mu.W"], p["mu.b"])
    logvar_raw, lv_cache = layers.dense_forward(h_enc, p["logvar.W"], p["logvar.b"])
    logvar, inside = layers.clamp_forward(logvar_raw, -30.0, 30.0)
    z, sampler_cache = dist.reparameterize_forward(mu, logvar, eps)
    a_dec, dec_cache = layers.dense_forward(z, p["decoder.0.W"], p["decoder.0.b"])
    h_dec, relu_cache = layers.relu_forward(a_dec)
    logits, out_cache = layers.dense_forward(h_dec, p["out.W"], p["out.b"])
    # 1. dlogits = (sigmoid(logits) - x) / B
    dlogits = (1 / (1 + np.exp(-logits)) - x) / B
    # 2. dh_dec = dlogits W_outᵀ, da_dec = dh_dec · 1[a_dec > 0], dz = da_dec W_decᵀ
    dh_dec = dlogits @ p["out.W"].T
    da_dec = dh_dec * (a_dec > 0)
    dz = da_dec @ p["decoder.0.W"].T
    # 3. dlogvar = dz · eps · std / 2
    dlogvar = dz * eps * np.exp(logvar / 2) / 2
    # 4. dlogvar += (e^logvar - 1) / (2B)
    dlogvar += (np.exp(logvar) - 1) / (2 * B)
    # 5. dlogvar_raw = dlogvar · 1[inside], dW_lv = h_encᵀ dlogvar_raw
    dW_lv = h_enc.T @ (dlogvar * inside)
    _, grads, _ = model.loss_and_grads(x, eps)
    np.testing.assert_allclose(dW_lv, grads["logvar.W"], rtol=1e-12, atol=1e-15)
    assert dW_lv.shape == (H, Z)


def test_the_iwae_score_term_vanishes_only_for_one_sample():
    """E[Σ_k w̃_k ∂log q(z_k)/∂mu] on the 1-D model of section 6, against the numbers there."""
    found = re.search(r"q = N\(([\d.]+), ([\d.]+)²\), p\(z\) = N\(0, 1\), p\(x\|z\) = N\(z, 1\) at\s+"
                      r"x = ([\d.]+)\): the mean of .*? over ([\d,]+) draws is ([\d.]+) ± ([\d.]+) "
                      r"for K = 1 and\s+([\d.]+) ± ([\d.]+) for K = 5", DERIVATION, re.S)
    assert found, "the IWAE paragraph's numbers are not where the test reads them"
    mu, s, x, n, m1, se1, m5, se5 = found.groups()
    mu, s, x, n = float(mu), float(s), float(x), int(n.replace(",", ""))
    rng = np.random.default_rng(0)
    for K, mean, se in ((1, float(m1), float(se1)), (5, float(m5), float(se5))):
        z = mu + s * rng.standard_normal((n, K))
        log_w = (-0.5 * (x - z) ** 2 - 0.5 * z**2 + 0.5 * ((z - mu) / s) ** 2 + np.log(s)
                 - 0.5 * np.log(2 * np.pi))  # log p(x|z) + log p(z) - log q(z)
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)  # w̃, (n, K)
        score = (w * (z - mu) / s**2).sum(axis=1)  # Σ_k w̃_k ∂log q(z_k)/∂mu
        assert abs(score.mean() - mean) < 4 * max(se, 1e-3)
        assert score.std() / np.sqrt(n) == pytest.approx(se, rel=0.5, abs=5e-4)
    assert float(m5) > 100 * float(se5)  # not zero for K = 5


def gradient_map_rows():
    """The README gradient map's "computed in" cells."""
    table = README[README.index("## The gradient map"):README.index("## The gradient report")]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ")]
    return [name for row in rows[1:] for name in re.findall(r"`([\w.*]+)`", row[-2])]


def test_every_function_the_gradient_map_names_exists():
    names = gradient_map_rows()
    assert len(names) >= 12
    for name in names:
        if name == "layers.*_backward":  # the activations, one backward each
            assert all(callable(bwd) for _, bwd in npvae.layers.ACTIVATIONS.values())
            continue
        assert callable(resolve(name)), name


def normalized(line):
    """A report line with its relative errors masked (they are rounding noise, which differs
    between CPUs) and its other numbers to 6 significant digits."""
    line = re.sub(r"\d\.\d\de[-+]\d\d", "E", line)
    return re.sub(r"-?\d+\.\d+", lambda m: f"{float(m.group()):.6g}", line)


def test_the_readme_sample_of_gradcheck_is_what_it_prints(capsys):
    sample = README[README.index("$ npvae gradcheck"):]
    sample = sample[:sample.index("```")].splitlines()[1:]
    assert cli.main(["gradcheck"]) == 0
    printed = {normalized(line) for line in capsys.readouterr().out.splitlines()}
    missing = [line for line in sample if line not in ("...", "")
               and normalized(line) not in printed]
    assert not missing, missing
