"""The VAE as a graphical model, and its two algorithms, drawn by matplotlib (no hand-made image).

    python -m npvae.run.diagrams docs/figures/graphical_model.png

Left: z → x inside a plate over the N examples; the decoder's weights θ parametrise p_θ(x|z)
(solid arrow), the encoder's weights φ parametrise q_φ(z|x) (dashed arrow, from x back to z),
which is not part of the generative model. Right: Algorithm 1 (training) and Algorithm 2
(generation) as text, each line naming the npvae call that does it (``ALGORITHM_CALLS``;
tests/test_diagrams.py resolves every one, so the boxes cannot name a function that is gone).
"""

import sys

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from .plots import _styled, savefig

ALGORITHM_1 = """Algorithm 1  Training                         (npvae.train)
  θ, φ ← random weights
  repeat for each minibatch x of B examples:
     mu, logvar ← encoder_φ(x)
     eps ~ N(0, I)                             (K, B, Z)
     z ← mu + exp(logvar/2) · eps              reparameterize_forward
     L ← (1/B) Σ_b [ (1/K) Σ_k −log p_θ(x_b|z_kb)
                     + KL(q_φ(z|x_b) ‖ N(0, I)) ]
     g ← ∂L/∂(θ, φ)                            VAE.loss_and_grads
     (θ, φ) ← Adam step with g                 Adam.step
  until the validation loss stops improving"""

ALGORITHM_2 = """Algorithm 2  Generation                       (VAE.sample)
  z ~ p(z) = N(0, I)
  x ~ p_θ(x|z)          (draw=True; else its mean, the decoder's output)"""

# The npvae calls the boxes name, as "module:attribute.path", resolved by the test.
ALGORITHM_CALLS = ("npvae:train", "npvae.core.distributions:reparameterize_forward",
                   "npvae:VAE.loss_and_grads", "npvae:Adam.step", "npvae:VAE.sample")


def _node(ax, xy, label, observed):
    """A circle for a random variable, grey when observed."""
    ax.add_patch(Circle(xy, 0.09, facecolor="0.82" if observed else "white", edgecolor="black",
                        lw=1.5, zorder=3))
    ax.text(*xy, label, ha="center", va="center", fontsize=16, zorder=4)


def _arrow(ax, start, end, dashed=False, rad=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, lw=1.5,
                                 ls="--" if dashed else "-", connectionstyle=f"arc3,rad={rad}",
                                 color="black", zorder=2))


@_styled
def graphical_model():
    """The figure: the graphical model on the left, Algorithms 1 and 2 on the right."""
    fig = plt.figure(figsize=(10.2, 4.2))
    ax = fig.add_axes([0.0, 0.0, 0.36, 1.0])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.axis("off")
    z, x = (0.45, 0.72), (0.45, 0.30)
    ax.add_patch(FancyBboxPatch((0.24, 0.12), 0.42, 0.76, boxstyle="round,pad=0.01",
                                fill=False, lw=1.0))
    ax.text(0.63, 0.14, "N", ha="right", va="bottom", fontsize=12)
    _node(ax, z, "z", observed=False)
    _node(ax, x, "x", observed=True)
    _arrow(ax, (z[0] - 0.02, z[1] - 0.09), (x[0] - 0.02, x[1] + 0.09), rad=0.0)  # p_θ(x|z)
    _arrow(ax, (x[0] + 0.07, x[1] + 0.06), (z[0] + 0.07, z[1] - 0.06), dashed=True, rad=0.45)
    _arrow(ax, (0.88, 0.31), (x[0] + 0.10, x[1] + 0.005))  # θ parametrises p_θ(x|z)
    _arrow(ax, (0.08, 0.72), (z[0] - 0.10, z[1]), dashed=True)  # φ parametrises q_φ(z|x)
    for (px, py), name in (((0.9, 0.31), "θ"), ((0.06, 0.72), "φ")):
        ax.plot(px, py, "o", color="black", ms=5)
        ax.text(px, py + 0.05, name, ha="center", fontsize=15)
    ax.text(0.40, 0.51, "p_θ(x|z)", fontsize=10, ha="right", va="center")
    ax.text(0.63, 0.51, "q_φ(z|x)", fontsize=10, ha="left", va="center", color="0.3")
    ax.text(0.5, 0.96, "p_θ(x, z) = p(z) p_θ(x|z)", ha="center", fontsize=10)
    ax.text(0.5, 0.03, "solid: generative model;  dashed: inference", ha="center", fontsize=9)
    for y, text in ((0.42, ALGORITHM_1), (0.10, ALGORITHM_2)):
        fig.text(0.38, y, text, family="monospace", fontsize=9.2, va="bottom",
                 bbox=dict(boxstyle="round,pad=0.6", facecolor="0.96", edgecolor="0.6"))
    return fig


def main(argv=None):
    """Write the figure to the path given (default docs/figures/graphical_model.png)."""
    argv = sys.argv[1:] if argv is None else argv
    path = savefig(graphical_model(), argv[0] if argv else "docs/figures/graphical_model.png")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
