"""The figure of ``demos/inference_gaps.py``: the inference gap split in three, and the true
posterior of a few images with the diagonal and the full-covariance q drawn over it."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from .plots import _grid_nll, _show, _styled, _title

GAPS = (("approximation\n(full q)", "approx"), ("diagonal\nvs full q", "diag"),
        ("amortisation", "amort"))


def _ellipse(ax, mu, cov, color, ls, label=None):
    """The 2σ ellipse of N(mu, cov) in 2-D (cov's eigenvectors give its axes)."""
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
    ax.add_patch(Ellipse(mu, 4 * np.sqrt(values[1]), 4 * np.sqrt(values[0]), angle=angle,
                         fill=False, color=color, lw=1.4, ls=ls, label=label))


@_styled
def inference_gaps_figure(summary, model, x, qs, n_grid=101, context=""):
    """Left: each gap's mean over the examples, as mean ± sd over seeds, for each kind of
    trained model (``summary``: {model name: {"approx" | "diag" | "amort": (mean, sd)}}).
    Right: for the images x (P, D) of a 2-D ``model``, p(z|x) ∝ p(x|z) p(z) on a grid around
    q_full*, normalised, with the 2σ ellipses of q_full*, q_diag* and the encoder's q
    (``qs``: {"q_full" | "q_diag" | "q_encoder": (mu (P, Z), L (P, Z, Z))})."""
    fig = plt.figure(figsize=(4.2 + 3.0 * len(x), 3.6))
    grid_spec = fig.add_gridspec(1, 1 + len(x), width_ratios=[1.5] + [1] * len(x))
    ax = fig.add_subplot(grid_spec[0])
    width = 0.8 / len(summary)
    for i, (name, gaps) in enumerate(summary.items()):
        means = [gaps[key][0] for _, key in GAPS]
        sds = [gaps[key][1] for _, key in GAPS]
        ax.bar(np.arange(3) + (i - (len(summary) - 1) / 2) * width, means, width, yerr=sds,
               capsize=3, label=name, color=f"C{i}")
    ax.set_xticks(np.arange(3), [label for label, _ in GAPS], fontsize=8)
    ax.set_ylabel("nats per example (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    styles = {"q_full": ("C3", "-", "best full q"), "q_diag": ("C0", "--", "best diagonal q"),
              "q_encoder": ("C2", ":", "encoder's q")}
    for p in range(len(x)):
        ax = fig.add_subplot(grid_spec[p + 1])
        mu, L = qs["q_full"][0][p], qs["q_full"][1][p]
        cov = L @ L.T
        half = 4 * np.sqrt(np.diag(cov)).max()
        u0, u1 = (np.linspace(m - half, m + half, n_grid) for m in mu)
        grid = np.array([[a, b] for b in u1 for a in u0], dtype=model.dtype)  # (n², 2)
        log_post = -_grid_nll(model, x[p], grid) - 0.5 * (grid.astype(np.float64) ** 2).sum(1)
        post = np.exp(log_post - log_post.max()).reshape(n_grid, n_grid)
        ax.imshow(post, origin="lower", extent=[u0[0], u0[-1], u1[0], u1[-1]], cmap="Greys",
                  aspect="auto")
        for name, (color, ls, label) in styles.items():
            m, f = qs[name][0][p], qs[name][1][p]
            _ellipse(ax, m, f @ f.T, color, ls, label if p == 0 else None)
        ax.set_xlim(u0[0], u0[-1])
        ax.set_ylim(u1[0], u1[-1])
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
        inset = ax.inset_axes([0.0, 0.74, 0.26, 0.26])
        _show(inset, x[p].reshape(28, 28))
        rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
        ax.set_title(f"p(z|x), ρ of q_full* = {rho:+.2f}", fontsize=9)
        if p == 0:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(_title("The inference gap split: approximation, diagonal q, amortisation",
                        context))
    return fig
