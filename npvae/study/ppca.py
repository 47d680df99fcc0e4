"""Probabilistic PCA in closed form (Tipping & Bishop 1999), and the linear VAE that equals it.

    x = W z + mean + noise,   z ~ N(0, I_Z),   noise ~ N(0, σ² I_D),   W : (D, Z)
    p(x)   = N(x | mean, C),                 C = W Wᵀ + σ² I_D
    p(z|x) = N(M⁻¹ Wᵀ (x - mean), σ² M⁻¹),   M = Wᵀ W + σ² I_Z

A VAE with no hidden layers and a Gaussian likelihood of fixed σ has exactly this decoder,
p(x|z) = N(z out.W + out.b, σ² I), so ``linear_vae_marginal`` gives its exact log p(x): the
yardstick for the importance-weighted estimate. Everything here is float64 linear algebra.

Shapes: N examples, D input, Z latent.
"""

import math

import numpy as np
import scipy.linalg

from ..core import checks
from ..core.distributions import LOG_2PI
from . import supports


def _matrix(X, name="X"):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {X.shape}.")
    return X


def _check_fit(X, n_components):
    """X as (N, D) float64 with N ≥ 2, and Z = n_components an integer in [1, D - 1]."""
    X = _matrix(X)
    N, D = X.shape
    if N < 2:
        raise ValueError(f"X has {N} example; fitting a covariance needs at least 2.")
    Z = n_components
    if isinstance(Z, bool) or not isinstance(Z, (int, np.integer)) or not 1 <= Z < D:
        raise ValueError(f"n_components must be an integer in [1, D - 1] = [1, {D - 1}], "
                         f"got {n_components!r}.")
    return X, int(Z)


def fit_ppca(X, n_components):
    """The maximum-likelihood PPCA fit (Tipping & Bishop 1999, eqs. 7 and 8).

    With S = (1/N) Σ_n (x_n - x̄)(x_n - x̄)ᵀ and its eigenvalues λ_1 ≥ ... ≥ λ_D, eigenvectors U:
        mean = x̄,   σ² = (1/(D - Z)) Σ_{j>Z} λ_j   (the variance the subspace leaves out),
        W = U_Z (Λ_Z - σ² I)^{1/2}                   (up to a rotation W R, which p(x) ignores).

    Parameters
    ----------
    X : (N, D) array, N ≥ 2.
    n_components : int Z, 1 ≤ Z < D.

    Returns
    -------
    mean : (D,) array,  W : (D, Z) array,  sigma2 : float.
    """
    X, Z = _check_fit(X, n_components)
    N = len(X)
    mean = X.mean(axis=0)  # (D,)
    Xc = X - mean  # (N, D)
    S = Xc.T @ Xc / N  # (D, D): the ML (biased) sample covariance
    lam, U = np.linalg.eigh(S)  # ascending
    lam, U = lam[::-1], U[:, ::-1]  # descending
    sigma2 = float(lam[Z:].mean())
    if not sigma2 > 0:
        raise ValueError(f"X lies in a subspace of dimension ≤ {Z}, so σ² = 0 and the "
                         f"likelihood is unbounded; use fewer components or noisier data.")
    W = U[:, :Z] * np.sqrt(np.maximum(lam[:Z] - sigma2, 0.0))  # (D, Z)
    return mean, W, sigma2


def _cholesky_M(W, sigma2):
    """The lower Cholesky factor of M = Wᵀ W + σ² I_Z: (Z, Z)."""
    return np.linalg.cholesky(W.T @ W + sigma2 * np.eye(W.shape[1]))


def ppca_log_likelihood(X, mean, W, sigma2):
    """Exact log N(x | mean, W Wᵀ + σ² I) for each row of X: (N,).

    With M = Wᵀ W + σ² I_Z = L Lᵀ (Woodbury and the matrix determinant lemma), no D × D matrix
    is formed:
        C⁻¹    = (I - W M⁻¹ Wᵀ) / σ²,          log|C| = (D - Z) log σ² + log|M|,
        rᵀC⁻¹r = (‖r‖² - ‖L⁻¹ Wᵀ r‖²) / σ²,    r = x - mean,
        log p  = -½ [D log 2π + log|C| + rᵀC⁻¹r].

    X : (N, D), mean : (D,), W : (D, Z), sigma2 : float > 0  ->  (N,) float64.
    """
    X, W = _matrix(X), _matrix(W, "W")
    sigma2 = float(sigma2)
    D, Z = W.shape
    R = X - np.asarray(mean, dtype=np.float64)  # (N, D)
    L = _cholesky_M(W, sigma2)  # (Z, Z)
    V = scipy.linalg.solve_triangular(L, (R @ W).T, lower=True)  # (Z, N): L⁻¹ Wᵀ r
    maha = ((R * R).sum(axis=1) - (V * V).sum(axis=0)) / sigma2  # (N,)
    log_det = (D - Z) * math.log(sigma2) + 2 * np.log(np.diag(L)).sum()
    return -0.5 * (D * LOG_2PI + log_det + maha)


def ppca_posterior(X, mean, W, sigma2):
    """The exact posterior p(z|x) = N(M⁻¹ Wᵀ (x - mean), σ² M⁻¹), M = Wᵀ W + σ² I_Z.

    X : (N, D)  ->  means : (N, Z),  cov : (Z, Z), the same for every x.
    """
    X, W = _matrix(X), _matrix(W, "W")
    factor = (_cholesky_M(W, float(sigma2)), True)  # for scipy's cho_solve
    means = scipy.linalg.cho_solve(factor, ((X - mean) @ W).T).T  # (N, Z)
    cov = float(sigma2) * scipy.linalg.cho_solve(factor, np.eye(W.shape[1]))  # (Z, Z)
    return means, cov


def linear_vae_marginal(model):
    """The exact marginal of a linear-Gaussian VAE's decoder, as PPCA parameters.

    With hidden_dims=() and likelihood="gaussian", p(x|z) = N(z out.W + out.b, σ² I) and
    p(z) = N(0, I), so p(x) = N(out.b, out.Wᵀ out.W + σ² I): PPCA with W = out.Wᵀ.
    ``ppca_log_likelihood(x, *linear_vae_marginal(model))`` is its exact log p(x).

    Returns
    -------
    mean : (D,) float64,  W : (D, Z) float64,  sigma2 : float.
    """
    c = model.config
    if c.hidden_dims or c.likelihood != "gaussian":
        raise ValueError(
            f"the marginal p(x) has a closed form only for a linear-Gaussian VAE "
            f"(hidden_dims=(), likelihood='gaussian'); this one has "
            f"hidden_dims={c.hidden_dims}, likelihood={c.likelihood!r}."
        )
    mean = model.params["out.b"].astype(np.float64)  # (D,)
    W = model.params["out.W"].T.astype(np.float64)  # (D, Z): out.W is (Z, D), y = z W + b
    return mean, W, c.sigma**2


def principal_angles(A, B):
    """The principal angles between the column spaces of A and B, in degrees, largest first.

    0 for a shared direction, 90 for orthogonal ones. A : (D, P), B : (D, Q)  ->  (min(P, Q),).
    """
    return np.degrees(scipy.linalg.subspace_angles(_matrix(A, "A"), _matrix(B, "B")))


def low_rank_data(n, D, Z, sigma, rng):
    """n draws from a random PPCA model: x = W z + mean + σ·noise, all standard normal.

    Returns
    -------
    X : (n, D) array,  mean : (D,) array,  W : (D, Z) array (the truth), all float64.
    """
    W = rng.standard_normal((D, Z))  # (D, Z)
    mean = rng.standard_normal(D)  # (D,)
    z = rng.standard_normal((n, Z))  # (n, Z)
    X = z @ W.T + mean + float(sigma) * rng.standard_normal((n, D))  # (n, D)
    return X, mean, W


def gaussian_kl(mu0, cov0, mu1, cov1):
    """KL(N(mu0, cov0) ‖ N(mu1, cov1)) for full covariances, batched over leading axes.

    KL = ½ [tr(Σ₁⁻¹ Σ₀) + (μ₁ − μ₀)ᵀ Σ₁⁻¹ (μ₁ − μ₀) − Z + log|Σ₁| − log|Σ₀|].

    mu0, mu1 : (..., Z) arrays,  cov0, cov1 : (..., Z, Z) symmetric positive definite
    ->  (...,) float64.
    """
    mu0, mu1, cov0, cov1 = (np.asarray(a, np.float64) for a in (mu0, mu1, cov0, cov1))
    Z = mu0.shape[-1]
    L1 = np.linalg.cholesky(cov1)  # (..., Z, Z)
    diff = (mu1 - mu0)[..., None]  # (..., Z, 1)
    A = np.linalg.solve(L1, cov0)  # L₁⁻¹ Σ₀
    trace = np.trace(np.linalg.solve(np.swapaxes(L1, -1, -2), A), axis1=-2, axis2=-1)
    maha = (np.linalg.solve(L1, diff) ** 2).sum(axis=(-2, -1))
    logdet1 = 2 * np.log(np.diagonal(L1, axis1=-2, axis2=-1)).sum(axis=-1)
    logdet0 = np.linalg.slogdet(cov0)[1]
    return 0.5 * (trace + maha - Z + logdet1 - logdet0)


def elbo_identity(model, x):
    """The three terms of log p(x) = ELBO(x) + KL(q(z|x) ‖ p(z|x)), each in closed form, for a
    linear-Gaussian VAE (``hidden_dims=()`` decoder, ``likelihood="gaussian"``, any encoder).

    With the decoder p(x|z) = N(z V + b, σ² I) (V = out.W, (Z, D)) and q(z|x) = N(m, diag s²):
        log p(x) = log N(x | b, Vᵀ V + σ² I)                               (PPCA's marginal)
        ELBO     = E_q log p(x|z) − KL(q ‖ N(0, I)),
        E_q log p(x|z) = −(D/2) log 2πσ² − [‖x − b − m V‖² + Σ_j s_j² ‖V_j‖²] / (2σ²),
        KL(q ‖ p(z|x)) with p(z|x) = N(M⁻¹ V (x − b), σ² M⁻¹), M = V Vᵀ + σ² I  (full, ``gaussian_kl``).
    The identity then holds to rounding: log_px − elbo − kl ≈ 0.

    x : (N, D)  ->  (log_px, elbo, kl), each (N,) float64.
    """
    supports.plain_vae(model, "ppca.elbo_identity")  # p(z) = N(0, I), q(z|x) diagonal, no y
    mean, W, sigma2 = linear_vae_marginal(model)  # checks the model is linear-Gaussian
    x = _matrix(x)
    m, logvar = (a.astype(np.float64) for a in model.encode(x.astype(model.dtype)))  # (N, Z)
    s2 = np.exp(logvar)  # (N, Z)
    V = W.T  # (Z, D)
    D, Z = x.shape[1], V.shape[0]
    resid = x - mean - m @ V  # (N, D)
    expected_sq = (resid * resid).sum(axis=1) + s2 @ (V * V).sum(axis=1)  # (N,)
    expected_log_lik = -0.5 * D * (LOG_2PI + math.log(sigma2)) - expected_sq / (2 * sigma2)
    kl_prior = 0.5 * (m * m + s2 - logvar - 1).sum(axis=1)
    post_mean, post_cov = ppca_posterior(x, mean, W, sigma2)  # (N, Z), (Z, Z)
    cov_q = s2[:, :, None] * np.eye(Z)  # (N, Z, Z), diagonal
    kl_post = gaussian_kl(m, cov_q, post_mean, np.broadcast_to(post_cov, cov_q.shape))
    return ppca_log_likelihood(x, mean, W, sigma2), expected_log_lik - kl_prior, kl_post


def em_ppca(X, n_components, n_iter=100, rng=None):
    """Fit PPCA by expectation-maximisation (Tipping & Bishop 1999, section 3.2).

    E-step: the exact posterior q(z_n) = p(z_n | x_n, θᵗ) = N(M⁻¹ Wᵀ r_n, σ² M⁻¹), r_n = x_n − x̄,
        with the moments  E[z_n] = M⁻¹ Wᵀ r_n  and  E[z_n z_nᵀ] = σ² M⁻¹ + E[z_n] E[z_n]ᵀ.
    M-step: θᵗ⁺¹ = argmax_θ Σ_n E_q log p(x_n, z_n | θ), in closed form:
        W = [Σ_n r_n E[z_n]ᵀ] [Σ_n E[z_n z_nᵀ]]⁻¹,
        σ² = (1/(N D)) Σ_n [‖r_n‖² − 2 E[z_n]ᵀ Wᵀ r_n + tr(E[z_n z_nᵀ] Wᵀ W)].
    Each iteration can only raise the log-likelihood (the E-step makes the bound tight, the
    M-step raises the bound).

    X : (N, D), n_components : Z, n_iter : iterations, rng : Generator for W's start.
    Returns mean (D,), W (D, Z), sigma2, history: the mean log-likelihood per example at the
    start and after each iteration, (n_iter + 1,).
    """
    X, Z = _check_fit(X, n_components)
    N, D = X.shape
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ValueError(f"n_iter must be an integer ≥ 0 (0 returns the start), got {n_iter!r}.")
    rng = np.random.default_rng(0) if rng is None else checks.as_generator(rng, "rng")
    mean = X.mean(axis=0)
    R = X - mean  # (N, D)
    W = rng.standard_normal((D, Z))  # (D, Z)
    sigma2 = float(R.var())
    history = [ppca_log_likelihood(X, mean, W, sigma2).mean()]
    for _ in range(int(n_iter)):
        Ez, cov = ppca_posterior(X, mean, W, sigma2)  # E-step: (N, Z), (Z, Z)
        sum_zz = N * cov + Ez.T @ Ez  # Σ_n E[z zᵀ], (Z, Z)
        W = np.linalg.solve(sum_zz, Ez.T @ R).T  # M-step, (D, Z)
        sigma2 = float(((R * R).sum() - 2 * ((Ez @ W.T) * R).sum()
                        + np.trace(sum_zz @ W.T @ W)) / (N * D))
        history.append(ppca_log_likelihood(X, mean, W, sigma2).mean())
    return mean, W, sigma2, np.array(history)
