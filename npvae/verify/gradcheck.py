"""Finite-difference gradient checks, for readers and for the test suite.

    numeric_grad(f, x)   centred differences  ∂f/∂x_i ≈ [f(x + h e_i) - f(x - h e_i)] / 2h
    rel_error(a, n)      ‖a - n‖ / (‖a‖ + ‖n‖)

``primitive_checks`` and ``model_checks`` compare every hand-written gradient in npvae with its
numeric twin, in float64; ``report`` prints them as the table of ``npvae gradcheck``.

Why a norm-wise relative error: an entry whose true gradient is 0 comes out of centred
differences as ±1e-11 or so (rounding in f), so an entry-wise ratio can be 1 for a correct
gradient. Over the whole array, rounding and truncation give ~1e-10, while any real mistake
(a missing factor ½, a wrong sign, a dropped path) gives ≥ 1e-3.
"""

import dataclasses

import numpy as np

from ..core import distributions as dist
from ..core import layers
from ..models.autoencoder import Autoencoder
from ..models.classifier import Classifier
from ..models.m2 import SemiSupervisedVAE
from ..models.cvae import CVAE
from ..models.hvae import HVAE
from ..core.vae import LOGVAR_MAX, LOGVAR_MIN, VAE

PRIMITIVE_TOL = 1e-7
MODEL_TOL = 1e-6


def numeric_grad(f, x, h=1e-6):
    """Centred finite differences of the scalar f() with respect to the array x.

    x is perturbed in place, one entry at a time, and restored; f takes no arguments and reads
    x (for a model: a parameter array that the loss reads). Returns an array shaped like x.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)  # views
    for i in range(flat_x.size):
        old = flat_x[i]
        flat_x[i] = old + h
        f_plus = f()
        flat_x[i] = old - h
        f_minus = f()
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad


def rel_error(analytic, numeric):
    """‖a - n‖₂ / (‖a‖₂ + ‖n‖₂): 0 for equal arrays, 1 for opposite ones (0 if both are 0)."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / denom) if denom > 0 else 0.0


@dataclasses.dataclass
class Check:
    """One row of the report: a gradient, its analytic and numeric values, their agreement."""

    name: str
    analytic: np.ndarray
    numeric: np.ndarray
    tol: float

    @property
    def error(self):
        return rel_error(self.analytic, self.numeric)

    @property
    def ok(self):
        return self.error < self.tol


def check_function(name, f_and_grads, inputs, tol=PRIMITIVE_TOL, h=1e-6):
    """Check every gradient of a function against finite differences.

    f_and_grads(*inputs) -> (value, grads): value a scalar, grads a tuple of ∂value/∂input,
    one per input (None for an input not checked). Returns a list of Check.
    """
    _, grads = f_and_grads(*inputs)
    checks = []
    for i, (x, g) in enumerate(zip(inputs, grads)):
        if g is not None:
            numeric = numeric_grad(lambda: f_and_grads(*inputs)[0], x, h)
            checks.append(Check(f"{name} d{_ARG_NAMES.get(name, ('x',))[i]}", g, numeric, tol))
    return checks


# The derivative each primitive's backward computes, as the report prints it.
FORMULAS = {
    "dense": "dx = dy Wᵀ, dW = xᵀ dy, db = Σ_rows dy",
    "identity": "dx = dy",
    "relu": "dx = dy · 1[x > 0]  (inputs on both sides)",
    "leaky_relu": "dx = dy · (1 if x > 0 else 0.01)",
    "tanh": "dx = dy · (1 - y²)",
    "sigmoid": "dx = dy · y (1 - y)",
    "softplus": "dx = dy · sigmoid(x)",
    "clamp": "dx = dy · 1[lo ≤ x ≤ hi]  (binding and not)",
    "bernoulli_nll": "dl = sigmoid(l) - x",
    "gaussian_nll": "dmean = (mean - x) / sigma²",
    "gaussian_nll_learned": "dmean = (mean - x) e^-lv, dlv = ½(1 - (x - mean)² e^-lv)",
    "kl_standard_normal": "dmu = mu, dlogvar = ½(e^logvar - 1)",
    "gaussian_log_density": "dz = -(z - mu) e^-lv, dmu = -dz, dlv = -½(1 - (z - mu)² e^-lv)",
    "standard_normal_log_density": "dz = -z",
    "reparameterize": "dmu = Σ_K dz, dlogvar = Σ_K dz · eps · std / 2  (K = 3)",
}

# The names of each primitive's checked inputs, for the report.
_ARG_NAMES = {
    "dense": ("x", "W", "b"),
    "bernoulli_nll": ("logits", "x"),
    "gaussian_nll": ("mean", "x"),
    "gaussian_nll_learned": ("mean", "logvar", "x"),
    "kl_standard_normal": ("mu", "logvar"),
    "gaussian_log_density": ("z", "mu", "logvar"),
    "standard_normal_log_density": ("z",),
    "reparameterize": ("mu", "logvar", "eps"),
}


def _projected(forward, backward, G):
    """Turn a forward/backward pair into (value, grads) of the scalar Σ forward(...) · G."""
    def f_and_grads(*inputs):
        out, cache = forward(*inputs)
        grads = backward(G, cache)
        return float((out * G).sum()), grads if isinstance(grads, tuple) else (grads,)
    return f_and_grads


def _weighted(fn, w):
    """Turn a terminal node fn(*inputs) -> (values, *grads) into the scalar Σ_B w · values.

    fn returns per-example values (B,) and the gradients of their sum with respect to its first
    inputs; the inputs after those (the targets x) are not checked.
    """
    def f_and_grads(*inputs):
        value, *grads = fn(*inputs)
        return float((value * w).sum()), tuple(g * w[..., None] for g in grads)
    return f_and_grads


def primitive_checks(seed=0):
    """Check every layer, activation and distribution primitive in float64."""
    rng = np.random.default_rng(seed)
    B, D, H = 4, 5, 3
    normal = rng.standard_normal
    checks = []

    x, W, b = normal((B, D)), normal((D, H)), normal(H)
    checks += check_function("dense", _projected(layers.dense_forward, layers.dense_backward,
                                                 normal((B, H))), [x, W, b])
    for name, (forward, backward) in layers.ACTIVATIONS.items():
        x = normal((B, H))
        x += np.sign(x) * 0.1  # keep relu's and leaky_relu's kink 0.1 away from every input
        checks += check_function(name, _projected(forward, backward, normal((B, H))), [x])
    x = rng.uniform(-3, 3, (B, H))
    x[np.abs(np.abs(x) - 2) < 0.1] = 0.0  # keep inputs away from the clamp's bounds ±2
    checks += check_function(
        "clamp", _projected(lambda v: layers.clamp_forward(v, -2.0, 2.0), layers.clamp_backward,
                            normal((B, H))), [x])

    w = rng.uniform(0.5, 1.5, B)  # per-example weights, so each example's value is checked
    x01 = rng.uniform(0, 1, (B, D))
    checks += check_function("bernoulli_nll", _weighted(dist.bernoulli_nll, w),
                             [3 * normal((B, D)), x01])
    checks += check_function(
        "gaussian_nll", _weighted(lambda m, t: dist.gaussian_nll(m, t, 0.7), w),
        [normal((B, D)), normal((B, D))])
    checks += check_function("gaussian_nll_learned", _weighted(dist.gaussian_nll_learned, w),
                             [normal((B, D)), normal((B, D)), normal((B, D))])
    checks += check_function("kl_standard_normal", _weighted(dist.kl_standard_normal, w),
                             [normal((B, H)), normal((B, H))])
    checks += check_function("gaussian_log_density", _weighted(dist.gaussian_log_density, w),
                             [normal((B, H)), normal((B, H)), normal((B, H))])
    checks += check_function("standard_normal_log_density",
                             _weighted(dist.standard_normal_log_density, w), [normal((B, H))])
    K = 3
    checks += check_function(
        "reparameterize",
        _projected(dist.reparameterize_forward, dist.reparameterize_backward, normal((K, B, H))),
        [normal((B, H)), normal((B, H)), normal((K, B, H))])
    return checks


# Small VAEs whose every parameter the report checks: (label, VAE kwargs, loss kwargs, K).
MODEL_CASES = [
    ("bernoulli, relu, 1 hidden, K=1", dict(likelihood="bernoulli", activation="relu"), {}, 1),
    ("gaussian, tanh, 1 hidden, K=3, beta=0.5", dict(likelihood="gaussian", activation="tanh",
                                                    sigma=0.6), dict(beta=0.5), 3),
    ("gaussian-learned, tanh, 2 hidden, K=2", dict(likelihood="gaussian-learned",
                                                  activation="tanh", hidden_dims=(7, 5)), {}, 2),
    ("bernoulli, linear (no hidden), K=2", dict(likelihood="bernoulli", hidden_dims=()), {}, 2),
    ("bernoulli, iwae K=4", dict(likelihood="bernoulli", activation="tanh"),
     dict(objective="iwae"), 4),
    ("gaussian, free bits 0.3", dict(likelihood="gaussian", activation="softplus"),
     dict(free_bits=0.3), 1),
    ("gaussian-learned, relu, both clamps binding, K=2",
     dict(likelihood="gaussian-learned", activation="relu"), {}, 2),
]

# Push one latent's log-variance below the clamp (-30) and one pixel's decoder log-variance
# above it (+30), so that both clamps bind there and not elsewhere. (Not the other way round:
# at logvar = +30 the KL, and at logvar_x = -30 the NLL, leave finite differences no digits.)
CLAMP_BINDING = {"logvar.b": (0, -80.0), "out_logvar.b": (0, 80.0)}


def model_checks(model, *inputs, **loss_kwargs):
    """Check ∂loss/∂param for every parameter of a float64 model, with eps held fixed.

    inputs : (x, eps) for a VAE, (x, y, eps) for a CVAE.
    """
    _, grads, _ = model.loss_and_grads(*inputs, **loss_kwargs)
    loss = lambda: model.loss_and_grads(*inputs, **loss_kwargs)[0]  # noqa: E731
    return [Check(name, grads[name], numeric_grad(loss, p), MODEL_TOL)
            for name, p in model.params.items()]


def small_model_case(vae_kwargs, K, seed=0, B=4, D=6, Z=3, model_cls=None):
    """A float64 VAE (or ``model_cls``) with data and eps fixed, sized for finite differences."""
    rng = np.random.default_rng(seed)
    kwargs = {"hidden_dims": (5,), "latent_dim": Z, "dtype": np.float64, "seed": seed,
              **vae_kwargs}
    model = (model_cls or VAE)(D, **kwargs)
    if model.config.likelihood == "bernoulli":
        x = (rng.uniform(size=(B, D)) < 0.5).astype(np.float64)
    else:
        x = rng.standard_normal((B, D))
    eps = rng.standard_normal((K, B, Z) if K > 1 else (B, Z))
    return model, x, eps


def branches(model, *inputs):
    """Which branches of the backward a model's check goes through, in words: how many
    entries each clamp binds, and the share of ReLU inputs on each side of 0."""
    cond, eps = _condition(model, inputs)
    fwd = model._forward(np.asarray(inputs[0], model.dtype), eps, cond)
    words = [f"K={fwd.z.size // fwd.mu.size}"]
    inside = fwd.encoder_cache[3]
    words.append(f"encoder clamp binds {int((~inside).sum())}/{inside.size}")
    if model.config.likelihood == "gaussian-learned":  # the clamp inside VAE._nll
        h, W = fwd.decoder_cache[1][1]  # the out_logvar head's input and weights
        logvar_x = h @ W + model.params["out_logvar.b"]
        outside = (logvar_x < LOGVAR_MIN) | (logvar_x > LOGVAR_MAX)
        words.append(f"decoder clamp binds {int(outside.sum())}/{outside.size}")
    if model.config.activation == "relu":
        acts = [a for _, a in fwd.encoder_cache[0] + fwd.decoder_cache[0]]  # relu outputs y
        off = sum(int((a <= 0).sum()) for a in acts) / max(1, sum(a.size for a in acts))
        words.append(f"relu inputs ≤ 0: {off:.0%}, > 0: {1 - off:.0%}")
    return ", ".join(words)


def _condition(model, inputs):
    """(cond, eps) for ``VAE._forward`` from a check's inputs (x, eps) or (x, y, eps)."""
    eps = np.asarray(inputs[-1], dtype=model.dtype)
    if len(inputs) == 3:
        from ..models.cvae import one_hot
        return one_hot(np.asarray(inputs[1]), model.n_classes, model.dtype), eps
    return None, eps


def all_checks(seed=0):
    """(section title, checks) for the primitives and every small model case; each model's
    title ends with the branches its check exercises (``branches``)."""
    sections = [("primitives", primitive_checks(seed))]
    for label, vae_kwargs, loss_kwargs, K in MODEL_CASES:
        model, x, eps = small_model_case(vae_kwargs, K, seed)
        if "clamps binding" in label:
            for name, (i, value) in CLAMP_BINDING.items():
                model.params[name][i] = value
        sections.append((f"VAE: {label}\n  branches: {branches(model, x, eps)}",
                         model_checks(model, x, eps, **loss_kwargs)))
    for likelihood, activation in (("bernoulli", "tanh"), ("gaussian", "relu")):
        # seed + 1: with seed 0, one example's ReLU code is exactly 0, a kink of the decoder's
        # first ReLU, where finite differences are wrong by construction.
        model, x, eps = small_model_case(dict(likelihood=likelihood, activation=activation), 1,
                                         seed + 1, model_cls=Autoencoder)
        sections.append((f"Autoencoder: {likelihood}, {activation}, 1 hidden",
                         model_checks(model, x, eps)))
    model = HVAE(6, hidden_dims=(5,), latent_dims=(3, 2), activation="tanh", dtype=np.float64,
                 seed=seed)
    x, _ = small_model_case({}, 1, seed)[1:]
    eps = np.random.default_rng(seed).standard_normal((2, len(x), model.noise_dim))
    sections.append(("HVAE: bernoulli, tanh, latents 3 and 2, K=2",
                     model_checks(model, x, eps, beta=0.7)))
    model, x, eps = small_model_case(dict(n_classes=3, activation="tanh"), 2, seed, model_cls=CVAE)
    y = np.arange(len(x)) % 3  # (B,) labels
    sections.append((f"CVAE: bernoulli, tanh, 3 classes, K=2\n  branches: "
                     f"{branches(model, x, y, eps)}", model_checks(model, x, y, eps)))
    return sections + classifier_sections(seed) + fullcov_sections(seed)


def classifier_sections(seed=0):
    """The softmax classifier (its loss: the cross-entropy on logits) and the semi-supervised
    VAE M2 on a labelled, an unlabelled (y = -1) and a mixed batch, every parameter each."""
    rng = np.random.default_rng(seed)
    x = (rng.uniform(size=(4, 6)) < 0.5).astype(np.float64)  # (B, D)
    clf = Classifier(6, 3, hidden_dims=(5,), activation="tanh", dtype=np.float64, seed=seed)
    sections = [("Classifier: softmax MLP, tanh, 1 hidden, 3 classes",
                 model_checks(clf, x, np.array([0, 1, 2, 1])))]
    m2 = SemiSupervisedVAE(6, 3, hidden_dims=(5,), latent_dim=3, activation="tanh",
                           classifier_dims=(4,), alpha=0.7, dtype=np.float64, seed=seed)
    eps = rng.standard_normal((2, 4, 3))  # (K, B, Z)
    for what, y in (("labelled", [0, 1, 2, 1]), ("unlabelled", [-1, -1, -1, -1]),
                    ("mixed", [0, -1, 2, -1])):
        sections.append((f"SemiSupervisedVAE (M2): {what} batch, tanh, 3 classes, K=2",
                         model_checks(m2, x, np.array(y), eps, beta=0.8)))
    return sections


def report(sections):
    """The table: one row per gradient, with its largest analytic entry, the numeric value
    of the same entry, and the relative error over the whole array; then each section's
    worst relative error, and a summary."""
    lines = []
    header = f"{'gradient':<34}{'analytic':>15}{'numeric':>15}{'rel. error':>12}{'tol':>8}"
    for title, checks in sections:
        lines += ["", title, header, "-" * len(header)]
        for c in checks:
            i = np.unravel_index(np.argmax(np.abs(c.analytic)), np.shape(c.analytic))
            a, n = np.asarray(c.analytic)[i], np.asarray(c.numeric)[i]
            formula = FORMULAS.get(c.name.split()[0], "") if title == "primitives" else ""
            lines.append(f"{c.name:<34}{a:>15.8g}{n:>15.8g}{c.error:>12.2e}{c.tol:>8.0e}  "
                         f"{'ok' if c.ok else 'FAIL'}  {formula}".rstrip())
        worst = max(checks, key=lambda c: c.error)
        lines.append(f"worst relative error {worst.error:.2e} ({worst.name})")
    checks = [c for _, cs in sections for c in cs]
    closest = max(checks, key=lambda c: c.error / c.tol)
    failed = sum(not c.ok for c in checks)
    lines += ["", f"{len(checks)} gradients checked, {failed} failed; the closest to its "
                  f"tolerance: {closest.name}, {closest.error:.2e} against {closest.tol:.0e}."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- full covariance

def _full_kl(mu, logvar, offdiag):
    """KL(N(mu, L Lᵀ) ‖ N(0, I)) as a function of the encoder's heads (L from cholesky)."""
    L, cache = dist.cholesky_forward(logvar, offdiag)
    kl, dmu, dL = dist.kl_full_standard_normal(mu, L)
    return (kl, dmu, *dist.cholesky_backward(dL, cache))


def _full_log_density(z, mu, logvar, offdiag):
    """log N(z | mu, L Lᵀ) as a function of z and the encoder's heads."""
    L, cache = dist.cholesky_forward(logvar, offdiag)
    logp, dz, dmu, dL = dist.gaussian_full_log_density(z, mu, L)
    return (logp, dz, dmu, *dist.cholesky_backward(dL, cache))


def _full_sampler_forward(mu, logvar, offdiag, eps):
    L, chol_cache = dist.cholesky_forward(logvar, offdiag)
    z, cache = dist.full_reparameterize_forward(mu, L, eps)
    return z, (chol_cache, cache)


def _full_sampler_backward(dz, caches):
    chol_cache, cache = caches
    dmu, dL = dist.full_reparameterize_backward(dz, cache)
    return (dmu, *dist.cholesky_backward(dL, chol_cache), None)  # eps is not checked


_ARG_NAMES.update({"kl_full_standard_normal": ("mu", "logvar", "offdiag"),
                   "gaussian_full_log_density": ("z", "mu", "logvar", "offdiag"),
                   "full_reparameterize": ("mu", "logvar", "offdiag", "eps")})

FULL_FORMULAS = ("  cholesky: L_ii = e^{logvar_i/2}, L_ij = offdiag (i > j); dlogvar_i = dL_ii L_ii / 2\n"
                 "  full_reparameterize: z = mu + L eps; dmu = Σ_K dz, dL = tril(Σ_K dz epsᵀ)\n"
                 "  kl_full_standard_normal: dmu = mu, dL = L − diag(1/L_ii)\n"
                 "  gaussian_full_log_density: u = L⁻¹(z − mu); dz = −L⁻ᵀu, dL = tril(L⁻ᵀu uᵀ) − "
                 "diag(1/L_ii)")


def fullcov_sections(seed=0):
    """The full-covariance primitives, each through ``cholesky_forward`` (so the checked
    inputs are the encoder's heads mu, logvar, offdiag), and every parameter of a small
    FullCovarianceVAE for each likelihood, K = 1 and K > 1, with the logvar clamp binding."""
    from ..models.fullcov import FullCovarianceVAE

    rng = np.random.default_rng(seed)
    B, Z, K = 4, 3, 3
    n_off = Z * (Z - 1) // 2
    w = rng.uniform(0.5, 1.5, B)
    heads = lambda: [rng.standard_normal((B, Z)), rng.standard_normal((B, Z)),  # noqa: E731
                     rng.standard_normal((B, n_off))]
    checks = check_function("kl_full_standard_normal", _weighted(_full_kl, w), heads())
    checks += check_function("gaussian_full_log_density", _weighted(_full_log_density, w),
                             [rng.standard_normal((B, Z)), *heads()])
    checks += check_function(
        "full_reparameterize",
        _projected(_full_sampler_forward, _full_sampler_backward, rng.standard_normal((K, B, Z))),
        [*heads(), rng.standard_normal((K, B, Z))])
    sections = [("full-covariance primitives (through cholesky_forward)\n" + FULL_FORMULAS,
                 checks)]
    cases = [("bernoulli, tanh, K=1", dict(likelihood="bernoulli", activation="tanh"), {}, 1),
             ("gaussian, tanh, K=3, beta=0.5", dict(likelihood="gaussian", activation="tanh",
                                                    sigma=0.6), dict(beta=0.5), 3),
             ("gaussian-learned, tanh, 2 hidden, logvar clamp binding, K=2",
              dict(likelihood="gaussian-learned", activation="tanh", hidden_dims=(7, 5)), {}, 2)]
    for label, vae_kwargs, loss_kwargs, k in cases:
        model, x, eps = small_model_case(vae_kwargs, k, seed, model_cls=FullCovarianceVAE)
        if "binding" in label:
            model.params["logvar.b"][0] = -80.0  # one latent's log L_ii² below the clamp
        sections.append((f"FullCovarianceVAE: {label}", model_checks(model, x, eps,
                                                                      **loss_kwargs)))
    return sections
