"""Figures of what a VAE learns, drawn with matplotlib's Agg backend (no display needed).

Every figure function returns a ``matplotlib.figure.Figure``; ``savefig(fig, path)`` writes it
as a PNG (creating the folder) and closes it. All figures share one style (``STYLE``, applied
by ``style()``): labelled axes, greyscale images without interpolation blur, and a title that
ends with the run's context, e.g. ``run_label("fashion-mnist", 20, 20)`` ->
"Fashion-MNIST · 20 epochs · Z = 20".

``plot_checkpoint(path, out_dir)`` draws every figure that applies to a trained checkpoint.

Shapes: N images, D = 784 pixels, Z latent dimensions, P pairs, T interpolation steps.
"""

import contextlib
import functools
import io
import math
import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.patches import Circle  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (Pillow, which matplotlib uses to write PNGs)
from scipy.stats import norm  # noqa: E402

from . import files  # noqa: E402  (every figure is written atomically)

__all__ = [
    "STYLE", "style", "savefig", "run_label", "tile", "lerp", "slerp",
    "image_grid", "reconstructions", "prior_samples", "loss_curves", "kl_bars",
    "latent_scatter", "manifold", "interpolations", "latent_spaces", "linear_vae_vs_pca",
    "beta_tradeoff", "plot_checkpoint",
]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "gray",
    "image.interpolation": "nearest",
    "figure.constrained_layout.use": True,
}

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}


@contextlib.contextmanager
def style():
    """Apply the npvae figure style (``STYLE``) inside a ``with`` block."""
    with matplotlib.rc_context(STYLE):
        yield


def _styled(make_figure):
    """Decorator: build the figure inside ``style()``."""
    @functools.wraps(make_figure)
    def wrapper(*args, **kwargs):
        with style():
            return make_figure(*args, **kwargs)
    return wrapper


def savefig(fig, path, dpi=100):
    """Write ``fig`` to ``path``, creating the folder; close the figure. Returns the Path.

    A PNG is written losslessly in the fewest channels that hold it: greyscale ("L") when
    every pixel is grey (as in the image grids), else RGB, so the files stay small. Other
    suffixes (.pdf, .svg) go to matplotlib as they are; a name without a suffix gets ".png",
    and the Path returned is the file written. The file is written atomically
    (``files.atomic_write``): a full disk leaves the previous figure whole, never a truncated
    one.
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    with style():
        if path.suffix.lower() != ".png":
            files.atomic_write(path, lambda f: fig.savefig(f, format=path.suffix[1:], dpi=dpi))
        else:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi)
            rgba = np.asarray(Image.open(buffer))  # (H, W, 4) uint8
            rgb = rgba[..., :3]
            if (rgba[..., 3] == 255).all():
                grey = (rgb == rgb[..., :1]).all()
                image = Image.fromarray(np.ascontiguousarray(rgb[..., 0] if grey else rgb))
            else:  # transparency: keep it
                image = Image.fromarray(rgba)
            files.atomic_write(path, lambda f: image.save(f, format="PNG", optimize=True))
    plt.close(fig)
    return path


def run_label(dataset=None, epochs=None, latent_dim=None):
    """The context that ends every title: "Fashion-MNIST · 20 epochs · Z = 20" (latent_dim a
    pair for a hierarchical VAE: "Z₁ = 20, Z₂ = 10")."""
    parts = []
    if dataset:
        parts.append(DATASET_NAMES.get(dataset, dataset))
    if epochs is not None:
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    if isinstance(latent_dim, tuple):
        parts.append(f"Z₁ = {latent_dim[0]}, Z₂ = {latent_dim[1]}")
    elif latent_dim is not None:
        parts.append(f"Z = {latent_dim}")
    return " · ".join(parts)


def _title(what, context):
    return f"{what} — {context}" if context else what


def _fitted_title(what, context, width_inches):
    """``_title``, broken into lines that fit a figure ``width_inches`` wide (about 11
    characters per inch at the title's size), the context on its own line first."""
    text = _title(what, context)
    limit = max(12, int(11 * width_inches))
    if len(text) <= limit:
        return text
    return "\n".join(_pack(what, limit) + (_pack(context, limit) if context else []))


def _pack(text, limit):
    """Lines of at most ``limit`` characters, broken only between the phrases of ``text``
    (at " · " or ",  "), and within a phrase only if it alone is longer."""
    lines = []
    for phrase in re.split(r"(?<= ·) |(?<=,)  ", text):
        if lines and len(lines[-1]) + 1 + len(phrase) <= limit:
            lines[-1] += " " + phrase
        else:
            lines += textwrap.wrap(phrase, limit) or [""]
    return lines


# --- arrays to pictures --------------------------------------------------------------------


_IMAGE_SHAPE = [None]  # the (H, W) that ``image_shape`` sets for the figures drawn inside it


@contextlib.contextmanager
def image_shape(shape):
    """Draw the images of every figure made inside the block as (H, W) = ``shape`` (images
    need not be square); None keeps the default, square images of D = s² pixels."""
    saved, _IMAGE_SHAPE[0] = _IMAGE_SHAPE[0], None if shape is None else tuple(shape)
    try:
        yield
    finally:
        _IMAGE_SHAPE[0] = saved


def _shape_of(D):
    """The (H, W) of images of D pixels: the one ``image_shape`` set, else a square."""
    shape = _IMAGE_SHAPE[0]
    if shape is not None and shape[0] * shape[1] == D:
        return shape
    side = math.isqrt(D)
    if side * side != D:
        raise ValueError(f"images of {D} pixels are not square and their shape is unknown; "
                         f"draw them inside plots.image_shape((H, W)).")
    return side, side


def tile(images, ncols, pad=1, pad_value=1.0):
    """Arrange images in a grid, row by row, ``pad`` pixels apart.

    images : (N, D), D = H·W (a square, or the shape ``image_shape`` set)
    ->  (R·(H+pad) - pad, ncols·(W+pad) - pad), R = ⌈N / ncols⌉ rows.
    Cells past N are left at ``pad_value``.
    """
    images = np.asarray(images, dtype=np.float64)
    n, D = images.shape
    H, W = _shape_of(D)
    nrows = -(-n // ncols)
    canvas = np.full((nrows * ncols, H + pad, W + pad), pad_value)  # (rows·cols, H+pad, W+pad)
    canvas[:n, :H, :W] = images.reshape(n, H, W)
    canvas = canvas.reshape(nrows, ncols, H + pad, W + pad).transpose(0, 2, 1, 3)
    canvas = canvas.reshape(nrows * (H + pad), ncols * (W + pad))  # (rows·(H+pad), cols·(W+pad))
    return canvas[: nrows * (H + pad) - pad, : ncols * (W + pad) - pad]


def _show(ax, canvas):
    """Greyscale, no interpolation, pixel values clipped to [0, 1], no ticks or grid."""
    ax.imshow(np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def lerp(a, b, t):
    """Linear interpolation (1 - t) a + t b.  a, b : (P, Z), t : (T,)  ->  (P, T, Z)."""
    t = np.asarray(t, dtype=a.dtype)[None, :, None]  # (1, T, 1)
    return (1 - t) * a[:, None] + t * b[:, None]


def slerp(a, b, t):
    """Spherical interpolation (Shoemake 1985), along the great circle from a to b.

    slerp(a, b; t) = [sin((1-t)Ω) a + sin(tΩ) b] / sin Ω,  cos Ω = a·b / (|a| |b|).
    Gaussian mass lies near a sphere, so this path stays where the prior puts its mass, while
    the straight line cuts through the low-norm interior. Where Ω ≈ 0 it is the linear path.

    a, b : (P, Z), t : (T,)  ->  (P, T, Z).
    """
    t = np.asarray(t, dtype=a.dtype)[None, :, None]  # (1, T, 1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)  # (P,)
    cos = np.sum(a * b, axis=1) / np.maximum(na * nb, np.finfo(a.dtype).tiny)
    omega = np.arccos(np.clip(cos, -1, 1))[:, None, None]  # (P, 1, 1)
    small = omega < 1e-4
    sin_omega = np.where(small, 1, np.sin(omega))
    wa = np.where(small, 1 - t, np.sin((1 - t) * omega) / sin_omega)  # (P, T, 1)
    wb = np.where(small, t, np.sin(t * omega) / sin_omega)
    return wa * a[:, None] + wb * b[:, None]


# --- image figures -------------------------------------------------------------------------


@_styled
def image_grid(images, ncols=10, title="Images", context=""):
    """A grid of images, N of them, ``ncols`` per row. images : (N, D) in [0, 1]."""
    nrows, width = -(-len(images) // ncols), max(4.0, 0.55 * ncols + 0.4)
    title = _fitted_title(title, context, width)
    fig, ax = plt.subplots(figsize=(width, 0.55 * nrows + 0.45 + 0.25 * (title.count("\n") + 1)))
    _show(ax, tile(images, ncols))
    ax.set_title(title)
    return fig


@_styled
def reconstructions(model, x, ncols=10, context="", y=None):
    """Inputs above, their reconstructions decode(mu(x)) below, in bands of ``ncols``.

    x : (N, D), N a multiple of ``ncols`` gives full bands; y : (N,) labels, for a CVAE only.
    """
    recon = model.reconstruct(x, *_given(y))  # (N, D)
    n_bands = -(-len(x) // ncols)
    fig, axes = plt.subplots(2 * n_bands, 1, figsize=(0.55 * ncols + 1.3, 1.25 * n_bands + 0.6),
                             squeeze=False)
    for band in range(n_bands):
        rows = slice(band * ncols, (band + 1) * ncols)
        for ax, images, label in [(axes[2 * band, 0], x[rows], "input"),
                                  (axes[2 * band + 1, 0], recon[rows], "reconstruction")]:
            _show(ax, tile(images, ncols))
            ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(_title("Reconstructions", context))
    return fig


@_styled
def prior_samples(model, n=100, ncols=10, rng=None, context="", labels=None, draw=False):
    """Decoded means of n draws z ~ N(0, I) from the prior (with draw=True, draws x ~ p(x|z)).

    For a CVAE, ``labels`` (n,) are the classes to decode with; None draws every class in
    turn (sample i has label i mod C).
    """
    conditional = getattr(model, "conditional", False)
    images = np.clip(model.sample(n if labels is None else labels, rng=rng, draw=draw), 0, 1)
    what = "Samples from the prior"
    if conditional:
        what += (f", one class per column (0 to {model.n_classes - 1})"
                 if labels is None and ncols % model.n_classes == 0
                 else " of every class in turn" if labels is None
                 else f" of class {_class_list(labels)}")
    mean = "x ~ p(x | z" if draw else "mean of p(x | z"
    if hasattr(model, "latent_dims"):  # a hierarchical VAE samples both layers in turn
        caption = f"{mean}₁),  z₂ ~ N(0, I),  z₁ ~ p(z₁ | z₂)"
    else:
        caption = f"{mean}, y),  z ~ N(0, I)" if conditional else f"{mean}),  z ~ N(0, I)"
    # At least 4 inches wide, and a line of height for every line of title and caption, so
    # that no text is ever cut at the figure's edges.
    width = max(4.0, 0.55 * ncols + 0.4)
    title, caption = _fitted_title(what, context, width), _fitted_title(caption, "", width)
    n_lines = title.count("\n") + caption.count("\n") + 2
    fig, ax = plt.subplots(figsize=(width, 0.55 * -(-n // ncols) + 0.3 + 0.25 * n_lines))
    _show(ax, tile(images, ncols))
    ax.set_title(title)
    ax.set_xlabel(caption)
    return fig


@_styled
def means_and_draws(model, n=10, n_draws=3, rng=None, context=""):
    """Generation in two steps, as Algorithm 2 has it: z ~ p(z), then x ~ p(x|z).

    Column j is one z_j ~ N(0, I): the top row is the mean of p(x|z_j), what the decoder
    expects; the rows below are independent draws x ~ p(x|z_j) (binary pixels for a Bernoulli
    decoder, the mean plus noise for a Gaussian one). A VAE only (not a CVAE).
    """
    rng = np.random.default_rng() if rng is None else rng
    z = rng.standard_normal((n, model.latent_dim)).astype(model.dtype)  # (n, Z)
    rows = [model.decode(z)] + [model.decode(z, draw=True, rng=rng) for _ in range(n_draws)]
    images = np.clip(np.concatenate(rows), 0, 1)  # (n · (1 + n_draws), D)
    fig, ax = plt.subplots(figsize=(0.55 * n + 0.4, 0.55 * (1 + n_draws) + 0.9))
    _show(ax, tile(images, n))
    ax.set_title(_title("Generation: z ~ p(z), then x ~ p(x | z)", context))
    ax.set_xlabel(f"top: the mean of p(x | z); below: {n_draws} draws x ~ p(x | z) per column")
    return fig


def _traversal(model, x, context, sds=np.linspace(-2.5, 2.5, 9)):
    """The traversal figure: each dimension about the first image's code, over ±2.5 standard
    deviations of the codes of x (N, D) about their mean."""
    from ..study.latent import codes, traversal

    z = codes(model, x).astype(np.float64)  # (N, Z)
    values = z.mean(axis=0)[:, None] + z.std(axis=0)[:, None] * sds  # (Z, V)
    return latent_traversal(traversal(model, x[0], values), sds, context)


def _code(model, x, y=None):
    """Where x lands in latent space: an Autoencoder's code, or the posterior mean mu(x)."""
    code = model.encode(x, *_given(y))
    return code if type(model).__name__ == "Autoencoder" else code[0]  # (N, Z)


def _given(y):
    """The label arguments of a model call: () for a VAE (y None), (y,) for a CVAE."""
    return () if y is None else (y,)


def _class_list(labels):
    """"3" for labels all 3, else "0, 1, 2" (the distinct ones)."""
    return ", ".join(str(c) for c in np.unique(labels))


@_styled
def manifold(model, n=16, context=""):
    """The learned 2-D manifold: decoded means on an n × n grid of z (Kingma & Welling, fig. 4).

    The grid is evenly spaced in probability: z = Φ⁻¹(u) for u evenly spaced in [0.05, 0.95],
    Φ the standard normal CDF, so each cell covers an equal share of the prior's mass.
    """
    if model.latent_dim != 2:
        raise ValueError(f"the manifold figure needs latent_dim = 2, got {model.latent_dim}.")
    values = norm.ppf(np.linspace(0.05, 0.95, n))  # (n,)
    z1, z2 = np.meshgrid(values, values[::-1])  # top row = largest z2, as on a y axis
    z = np.stack([z1.ravel(), z2.ravel()], axis=1)  # (n², 2), row by row
    images = model.decode(z.astype(model.dtype))  # (n², D)
    H, W = _shape_of(images.shape[1])
    fig, ax = plt.subplots(figsize=(0.36 * n + 0.3, 0.36 * n + 0.7))  # about 1 : 1 pixels
    _show(ax, tile(images, n))
    every = max(1, n // 5)
    ax.set_xticks((np.arange(n) * (W + 1) + W / 2)[::every],
                  [f"{v:.2f}" for v in values[::every]])
    ax.set_yticks((np.arange(n) * (H + 1) + H / 2)[::every],
                  [f"{v:.2f}" for v in values[::-1][::every]])
    ax.set_xlabel("z₁  (spaced by the inverse normal CDF)")
    ax.set_ylabel("z₂")
    ax.set_title(_title("The learned 2-D manifold", context))
    return fig


@_styled
def interpolations(model, x_a, x_b, steps=10, context=""):
    """Decoded paths between the posterior means of pairs of images, linear and spherical.

    Each pair gives two rows, [x_a, decode(path(t)) for t in [0, 1], x_b]: the straight line
    (lerp) and the great circle (slerp) between mu(x_a) and mu(x_b).
    x_a, x_b : (P, D).
    """
    mu_a, mu_b = _code(model, x_a), _code(model, x_b)  # (P, Z) each
    t = np.linspace(0, 1, steps)  # (T,)
    P = len(x_a)
    fig, axes = plt.subplots(2 * P, 1, figsize=(0.55 * (steps + 2) + 1.1, 1.05 * P + 0.8),
                             squeeze=False)
    for name, path_fn, offset in [("linear", lerp, 0), ("spherical", slerp, 1)]:
        path = path_fn(mu_a, mu_b, t)  # (P, T, Z)
        decoded = model.decode(path.reshape(P * steps, -1)).reshape(P, steps, -1)  # (P, T, D)
        rows = np.concatenate([x_a[:, None], decoded, x_b[:, None]], axis=1)  # (P, T+2, D)
        for p in range(P):
            ax = axes[2 * p + offset, 0]
            _show(ax, tile(rows[p], steps + 2))
            ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("input a  ·  decoded path from mu(a) to mu(b)  ·  input b")
    fig.suptitle(_title("Latent interpolation", context))
    return fig


# --- curves and bars -----------------------------------------------------------------------


@_styled
def latent_traversal(images, values, context=""):
    """One row per latent dimension, the decoded images as that dimension alone moves through
    its values (``npvae.study.latent.traversal``). images : (Z, V, D); values : (V,) in standard
    deviations of the test codes about their mean."""
    Z, V, _ = images.shape
    width = max(4.0, 0.55 * V + 1.0)
    title = _fitted_title("Latent traversal: one dimension at a time", context, width)
    fig, ax = plt.subplots(figsize=(width, 0.55 * Z + 0.55 + 0.25 * (title.count("\n") + 2)))
    _show(ax, tile(images.reshape(Z * V, -1), V))
    H, W = _shape_of(images.shape[2])
    ax.set_yticks(np.arange(Z) * (H + 1) + H / 2, [f"z{j}" for j in range(Z)])
    ax.tick_params(axis="y", length=0)
    ax.set_title(title)
    ax.set_xlabel(_fitted_title(f"z_j from {values[0]:g} to {values[-1]:+g} sd of the test "
                                f"codes,  the rest at one image's code", "", width))
    return fig


@_styled
def loss_curves(history, context=""):
    """Per-epoch train and validation -ELBO, reconstruction and KL, in nats per example.

    The -ELBO is recon + KL (not the beta-weighted loss, so runs with warm-up compare).
    history : list of dicts with "epoch", "recon", "kl" and optionally "val_recon", "val_kl".
    """
    epoch = np.array([h["epoch"] for h in history])
    has_val = all("val_recon" in h for h in history)
    series = {}
    for prefix in [""] + (["val_"] if has_val else []):
        recon = np.array([h[prefix + "recon"] for h in history], dtype=float)
        kl = np.array([h[prefix + "kl"] for h in history], dtype=float)
        series[prefix] = {"−ELBO": recon + kl, "reconstruction": recon, "KL": kl}
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.1))
    for ax, key in zip(axes, ["−ELBO", "reconstruction", "KL"]):
        ax.plot(epoch, series[""][key], "o-", ms=3, label="train")
        if has_val:
            ax.plot(epoch, series["val_"][key], "s--", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{key} (nats)")
        ax.set_title(key)
        ax.legend()
    fig.suptitle(_title("Training curves", context))
    return fig


@_styled
def kl_bars(kl, context="", layers=None):
    """The KL of each latent dimension, averaged over the data. kl : (Z,) in nats.

    layers : (Z₁, Z₂) for a hierarchical VAE, whose kl is (Z₁ + Z₂,) (``evaluate.
    kl_per_dimension``): each layer's bars in its own colour, against its own prior."""
    kl = np.asarray(kl, dtype=float)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * len(kl) + 1.5), 3.0))
    if layers is None:
        ax.bar(np.arange(len(kl)), kl, color="C0")
        ax.set_xticks(np.arange(len(kl)))
        ax.set_ylabel("KL(q(z_j | x) ‖ N(0, 1)) (nats)")
        what = f"KL per latent dimension (total {kl.sum():.1f} nats)"
    else:
        Z1 = layers[0]
        for name, part, colour, label in [
                ("z₁", slice(0, Z1), "C0", "z₁: log q(z₁ⱼ | x) − log p(z₁ⱼ | z₂)"),
                ("z₂", slice(Z1, None), "C1", "z₂: KL(q(z₂ⱼ | z₁) ‖ N(0, 1))")]:
            ax.bar(np.arange(len(kl))[part], kl[part], color=colour, label=label)
        ax.set_xticks(np.arange(len(kl)), [*range(Z1), *range(len(kl) - Z1)])
        ax.set_ylabel("KL term (nats)")
        ax.legend(fontsize="small")
        what = (f"KL per latent dimension (z₁ {kl[:Z1].sum():.1f}, "
                f"z₂ {kl[Z1:].sum():.1f} nats)")
    ax.set_xlabel("latent dimension")
    ax.set_title(_title(what, context))
    ax.grid(axis="x", visible=False)
    return fig


# --- latent spaces -------------------------------------------------------------------------


def _scatter(ax, mu, labels, class_names, legend=True):
    """Posterior means coloured by label on ``ax``, one colour per class, over the prior's
    1σ and 2σ circles (dashed)."""
    classes = np.unique(labels)
    for c in classes:
        keep = labels == c
        name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
        ax.scatter(mu[keep, 0], mu[keep, 1], s=2, alpha=0.6, color=plt.cm.tab10(int(c) % 10),
                   label=name, rasterized=True)
    # The prior N(0, I): circles holding 39% and 86% of its mass; the view always shows ±3.
    for radius in (1, 2):
        ax.add_patch(Circle((0, 0), radius, fill=False, ls="--", lw=0.8, color="0.4",
                            label="prior: 1σ, 2σ" if radius == 1 else None))
    ax.update_datalim([(-3, -3), (3, 3)])
    ax.autoscale_view()
    ax.set_xlabel("mean of z₁")
    ax.set_ylabel("mean of z₂")
    ax.set_aspect("equal", adjustable="datalim")
    if legend:
        ax.legend(markerscale=5, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="label")


@_styled
def latent_scatter(mu, labels, dataset=None, context=""):
    """Posterior means of 2-D latents, coloured by label, with a legend. mu : (N, 2)."""
    mu = np.asarray(mu)
    if mu.ndim != 2 or mu.shape[1] != 2:
        raise ValueError(f"the scatter needs 2-D posterior means, got shape {mu.shape}.")
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    _scatter(ax, mu, np.asarray(labels), CLASS_NAMES.get(dataset))
    ax.set_title(_title("Test set in latent space", context))
    return fig


@_styled
def latent_spaces(panels, dataset=None, context=""):
    """Side-by-side 2-D scatters. panels : list of (title, mu (N, 2), labels (N,))."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.4, 3.9),
                             squeeze=False)
    for i, (ax, (name, mu, labels)) in enumerate(zip(axes[0], panels)):
        _scatter(ax, np.asarray(mu), np.asarray(labels), CLASS_NAMES.get(dataset),
                 legend=i == len(panels) - 1)
        ax.set_title(name)
    fig.suptitle(_title("Test set in latent space", context))
    return fig


# --- comparisons ---------------------------------------------------------------------------


@_styled
def linear_vae_vs_pca(angles, history, ppca_ll, angles_init=None, context=""):
    """Left: principal angles between the decoder's columns and the top PCA subspace.
    Right: the ELBO per epoch against the PPCA maximum log-likelihood.

    angles : (Z,) degrees after training; angles_init : (Z,) degrees at initialisation.
    history : list of dicts with "epoch", "recon", "kl" (train) and optionally "val_*".
    ppca_ll : float, the PPCA maximum log-likelihood per example (nats).
    """
    angles = np.asarray(angles, dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    idx = np.arange(1, len(angles) + 1)
    if angles_init is not None:
        ax1.bar(idx - 0.2, angles_init, width=0.4, color="0.7", label="at initialisation")
        bars = ax1.bar(idx + 0.2, angles, width=0.4, color="C0", label="after training")
        ax1.legend(loc="upper right", ncol=2)
    else:
        bars = ax1.bar(idx, angles, color="C0")
    if len(angles) <= 6:
        ax1.bar_label(bars, [f"{a:.2f}°" for a in angles], padding=2, color="C0")
    ax1.set_xticks(idx)
    ax1.set_xlabel("principal angle index")
    ax1.set_ylabel("angle (degrees)")
    ax1.set_ylim(0, 105)
    ax1.set_yticks(np.arange(0, 91, 15))
    ax1.set_title(f"decoder columns vs top-{len(angles)} PCA subspace\n"
                  f"(largest angle after training: {angles.max():.2f}°)")
    ax1.grid(axis="x", visible=False)

    epoch = np.array([h["epoch"] for h in history])
    elbo = -np.array([h["recon"] + h["kl"] for h in history])
    ax2.plot(epoch, elbo, "o-", ms=3, label="linear VAE ELBO (train)")
    if all("val_recon" in h for h in history):
        val = -np.array([h["val_recon"] + h["val_kl"] for h in history])
        ax2.plot(epoch, val, "s--", ms=3, label="linear VAE ELBO (validation)")
    ax2.axhline(ppca_ll, color="k", ls=":", label="PPCA max log-likelihood")
    lo = min(ppca_ll, float(np.min(elbo[len(elbo) // 4:])))
    span = abs(ppca_ll - lo) + 0.02 * abs(ppca_ll) + 1e-9
    ax2.set_ylim(lo - 0.3 * span, ppca_ll + 0.5 * span)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("nats per example")
    ax2.set_title("ELBO vs PPCA optimum")
    ax2.legend(loc="lower right")
    fig.suptitle(_title("Linear VAE = probabilistic PCA", context))
    return fig


@_styled
def beta_tradeoff(betas, recon, kl, samples=None, context=""):
    """Reconstruction against KL as beta varies (a rate–distortion curve).

    betas, recon, kl : (K,) sequences, recon and KL in nats per example (test set).
    samples : optional list of K arrays (n, D), prior samples of each model, drawn as rows.
    """
    betas, recon, kl = (np.asarray(a, dtype=float) for a in (betas, recon, kl))
    ncols = 2 if samples is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.0), squeeze=False)
    ax = axes[0, 0]
    ax.plot(kl, recon, "o-", color="C0")
    for b, k, r in zip(betas, kl, recon):
        ax.annotate(f"β = {b:g}", (k, r), textcoords="offset points", xytext=(6, 4))
    # Lines of constant -ELBO = recon + KL (for beta = 1) run at -45°.
    lo, hi = float(np.min(recon + kl)), float(np.max(recon + kl))
    ks = np.linspace(0, kl.max() * 1.1 + 1e-9, 2)
    for level in np.linspace(lo, hi, 3):
        ax.plot(ks, level - ks, color="0.75", lw=0.8, ls="--", zorder=0)
    ax.set_xlim(-0.03 * kl.max() - 0.5, kl.max() * 1.15 + 0.5)
    ax.set_ylim(recon.min() - 0.1 * np.ptp(recon) - 1, recon.max() + 0.1 * np.ptp(recon) + 1)
    ax.set_xlabel("KL(q(z|x) ‖ p(z))  — rate (nats)")
    ax.set_ylabel("−log p(x|z)  — distortion (nats)")
    ax.set_title("reconstruction vs KL (dashed: equal −ELBO)")
    if samples is not None:
        ax = axes[0, 1]
        n = len(samples[0])
        _show(ax, tile(np.concatenate(samples), n))
        side = math.isqrt(samples[0].shape[1])
        ax.set_yticks(np.arange(len(betas)) * (side + 1) + side / 2,
                      [f"β = {b:g}" for b in betas])
        ax.set_title("samples from the prior")
    fig.suptitle(_title("The β trade-off", context))
    return fig


# --- everything from a checkpoint ----------------------------------------------------------


def plot_checkpoint(path, out_dir, dataset=None, data_dir=None, n_eval=2000, seed=0,
                    skipped=None):
    """Draw every figure that applies to a trained checkpoint, without retraining.

    Always: prior samples, the training curves if the checkpoint holds a history, and for a
    2-D latent space the manifold (not for a CVAE, whose decoder needs a label). With data
    (``dataset``, else the one recorded in the checkpoint by ``npvae train`` or the demos):
    reconstructions, the KL per dimension, interpolations (not for a CVAE) and, for a 2-D
    latent space, the scatter of posterior means, on ``n_eval`` random test images (a CVAE
    encodes each with its own label). The KL is measured on binarized images if the run
    binarized its data.

    Parameters
    ----------
    path : a checkpoint .npz, or a run folder holding checkpoint.npz.
    out_dir : folder for the PNGs (created if needed).
    dataset : "mnist" or "fashion-mnist", or None for the recorded one.
    data_dir : folder of the IDX files, or None for the recorded one (then the usual search).
    seed : seeds the prior draws, the choice of test images and their binarization.
    skipped : a list, or None: each figure that does not apply to this model or data is
        appended as (file name, why), e.g. an Autoencoder's prior samples and KL.

    Returns
    -------
    list of the Paths written.
    """
    from . import checkpoint
    from . import data as npdata
    from . import runs

    model, meta = checkpoint.load_with_metadata(path)
    history = meta.get("history") or []
    run = meta.get("args") or {}
    own = dataset is None or dataset == meta.get("dataset")  # the run's own data
    dataset = dataset or meta.get("dataset")
    data_dir = data_dir or meta.get("data_dir")
    name = (meta.get("data_name") if own else None) or dataset  # titles name the data
    context = run_label(name, len(history) or None, getattr(model, "latent_dims",
                                                            model.latent_dim))
    seeds = np.random.SeedSequence(seed).spawn(3)
    out = Path(out_dir)
    skipped = [] if skipped is None else skipped
    shape = saved_image_shape(meta, model.input_dim)
    with image_shape(shape):
        written = _model_figures(model, history, out, context, shape, skipped, seeds[0])
        if dataset is None:
            skipped += [(f, "the checkpoint records no data set; pass --dataset")
                        for f in TEST_FIGURES]
            return written
        # The run's held-out test examples, checked against the fingerprint recorded in training.
        _, x, labels = runs.run_test_data(meta, dataset, data_dir, dtype=model.dtype)
        if x.shape[1] != model.input_dim:
            skipped += [(f, f"the {name} test examples have {x.shape[1]} values, the model "
                            f"takes {model.input_dim}") for f in TEST_FIGURES]
            return written
        labels = np.zeros(len(x), np.int64) if labels is None else labels  # unlabelled data
        pick = np.random.default_rng(seeds[1]).permutation(len(x))[:n_eval]
        binarized = meta.get("binarize", run.get("binarize")) in ("dynamic", "static")
        x_kl = (npdata.binarize(x[pick], np.random.default_rng(seeds[2])) if binarized
                else x[pick])
        return written + _test_figures(model, x[pick], labels[pick], x_kl, out,
                                       dataset if own and name == dataset else None, context,
                                       skipped, np.random.default_rng(seeds[2]), shape)


# The figures drawn on test data, and the images' shape when unknown.
TEST_FIGURES = ("reconstructions.png", "kl_per_dim.png", "interpolation.png")
NO_SHAPE = ("the images' shape is unknown: the data's x was saved as (N, {D}) vectors and "
            "{D} is not a square; save x as (N, H, W) images and train again")


def saved_image_shape(meta, D):
    """The images' (H, W): the one the checkpoint saved, a square, or None (unknown)."""
    saved = meta.get("image_shape")
    if saved and saved[0] * saved[1] == D:
        return tuple(saved)
    side = math.isqrt(D)
    return (side, side) if side * side == D else None


def _model_figures(model, history, out, context, shape, skipped, seed):
    """The figures of ``plot_checkpoint`` that need no data: prior samples, the training
    curves, the 2-D manifold (each when it applies). The list of Paths written."""
    written, autoencoder = [], type(model).__name__ == "Autoencoder"
    if autoencoder:
        skipped += [(name, "an Autoencoder has no prior p(z) to sample from")
                    for name in ("samples.png", "manifold.png")]
    elif shape is None:
        skipped.append(("samples.png", NO_SHAPE.format(D=model.input_dim)))
    else:
        written.append(savefig(prior_samples(model, 100, rng=np.random.default_rng(seed),
                                             context=context), out / "samples.png"))
    if history and all(isinstance(r.get(key), (int, float)) for r in history
                       for key in ("recon", "kl")):
        written.append(savefig(loss_curves(history, context), out / "loss_curves.png"))
    if hasattr(model, "latent_dims") and model.latent_dim == 2:
        skipped.append(("manifold.png", "a hierarchical VAE's z₁ has prior p(z₁|z₂), not the "
                                        "N(0, I) the grid's spacing assumes"))
    elif model.latent_dim == 2 and not model.conditional and not autoencoder:
        if shape is None:
            skipped.append(("manifold.png", NO_SHAPE.format(D=model.input_dim)))
        else:
            written.append(savefig(manifold(model, context=context), out / "manifold.png"))
    return written


def _test_figures(model, x, labels, x_kl, out, dataset, context, skipped, rng, shape):
    """The figures of ``plot_checkpoint`` drawn on test images x : (N, D) with their labels
    (N,), x_kl the images the KL is measured on: the list of Paths written."""
    from ..study.evaluate import kl_per_dimension
    from ..study.supports import has_diagonal_posterior

    y = labels if model.conditional else None  # what a CVAE's calls are given
    written = []
    if shape is None:
        skipped += [(f, NO_SHAPE.format(D=model.input_dim))
                    for f in ("reconstructions.png", "interpolation.png")]
    else:
        written.append(savefig(reconstructions(model, x[:20], context=context,
                                               y=None if y is None else y[:20]),
                               out / "reconstructions.png"))
    if type(model).__name__ == "Autoencoder":
        skipped.append(("kl_per_dim.png", "an Autoencoder has no q(z|x) and no KL"))
    elif not has_diagonal_posterior(model):
        skipped.append(("kl_per_dim.png", f"a {type(model).__name__}'s q(z|x) is not "
                                          f"diagonal, so its KL does not split over dimensions"))
    else:  # an HVAE: each layer against its own prior
        written.append(savefig(kl_bars(kl_per_dimension(model, x_kl, y=y, rng=rng), context,
                                       getattr(model, "latent_dims", None)),
                               out / "kl_per_dim.png"))
    if model.conditional:
        skipped.append(("interpolation.png", "a CVAE's path between two images of different "
                                             "classes has no one label to decode with"))
    elif shape is not None:
        pairs = min(4, len(x) // 2)
        written.append(savefig(interpolations(model, x[:pairs], x[pairs:2 * pairs],
                                              context=context), out / "interpolation.png"))
    if model.latent_dim > 2 and model.conditional:
        skipped.append(("traversal.png", "a CVAE decodes with a label"))
    elif model.latent_dim > 2 and shape is not None:
        written.append(savefig(_traversal(model, x, context), out / "traversal.png"))
    if model.latent_dim == 2:
        mu = _code(model, x, y)
        written.append(savefig(latent_scatter(mu, labels, dataset, context),
                               out / "latent_scatter.png"))
    return written


# --- regularity: the autoencoder's latent space against the VAE's ----------------------------


@_styled
def regularity_views(models, x, labels, x_a, x_b, seed=0, dataset=None, context=""):
    """One row per model (``{name: model}``, each a 2-D VAE or Autoencoder), the same four
    views: the codes of the images x (N, D) coloured by label; 36 decoded draws z ~ N(0, I);
    a decoded 10 × 10 grid over the box the codes occupy; and straight paths between the codes
    of the pairs (x_a, x_b), each (P, D), one row of 10 steps per pair."""
    from ..study.regularity import codes, latent_grid

    fig, axes = plt.subplots(len(models), 4, figsize=(17, 4.2 * len(models)),
                             gridspec_kw={"width_ratios": [1.25, 1, 1, 1.4]})
    for row, (name, model) in zip(np.atleast_2d(axes), models.items()):
        z = codes(model, x)  # (N, 2)
        _scatter(row[0], z, labels, CLASS_NAMES.get(dataset), legend=False)
        row[0].set_title(f"{name}: codes of test images")
        prior = model.sample(36, rng=np.random.default_rng(seed))  # (36, D)
        _show(row[1], tile(np.clip(prior, 0, 1), 6))
        row[1].set_title(f"{name}: decoded z ~ N(0, I)")
        grid = model.decode(latent_grid(z, 10).astype(model.dtype))  # (100, D)
        _show(row[2], tile(np.clip(grid, 0, 1), 10))
        row[2].set_title(f"{name}: grid over the codes' box")
        t = np.linspace(0, 1, 10)[None, :, None]  # (1, T, 1)
        za, zb = codes(model, x_a), codes(model, x_b)  # (P, 2)
        path = ((1 - t) * za[:, None] + t * zb[:, None]).reshape(-1, 2).astype(model.dtype)
        _show(row[3], tile(np.clip(model.decode(path), 0, 1), 10))
        row[3].set_title(f"{name}: straight paths between codes")
    fig.suptitle(_title("Regularity: the same layers as an autoencoder and as a VAE", context))
    return fig


@_styled
def sigma_collapse(curves, context=""):
    """The encoder's mean standard deviation σ = exp(logvar / 2) against training steps, one
    line per ``{label: (steps, sigmas)}``: with β = 0 nothing holds σ up, and q(z|x) shrinks
    towards a point."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, (steps, sigmas) in curves.items():
        ax.plot(steps, sigmas, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("mean σ of q(z | x)")
    ax.legend()
    ax.set_title(_title("Without the KL, the encoder's noise collapses", context))
    return fig


# --- the constant c, the decoder's variance -----------------------------------------------------


@_styled
def decoder_variance_curve(results, c_learned=None, context=""):
    """Squared error per image and KL against c = σ² (log scale), one point per trained σ;
    ``results`` : [{"sigma", "squared_error", "kl"}]. ``c_learned`` marks the mean variance a
    learned-variance decoder chose."""
    c = np.array([r["sigma"] ** 2 for r in results])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(c, [r["squared_error"] for r in results], "o-", color="C0",
            label="‖x − x̂‖² per image")
    ax.set_xscale("log")
    ax.set_xlabel("c = σ², the decoder's variance")
    ax.set_ylabel("squared error per image", color="C0")
    twin = ax.twinx()
    twin.plot(c, [r["kl"] for r in results], "s--", color="C1", label="KL (nats)")
    twin.set_ylabel("KL(q(z|x) ‖ p(z)) (nats)", color="C1")
    twin.grid(False)
    if c_learned is not None:
        ax.axvline(c_learned, color="0.3", ls=":", label=f"learned variance: c = {c_learned:.3g}")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper center")
    ax.set_title(_title("The constant c: reconstruction against KL", context))
    return fig


@_styled
def decoder_variance_images(results, context=""):
    """For each σ, a row of reconstructions decode(mu(x)) and a row of prior samples."""
    rows = [np.clip(r[key], 0, 1) for r in results for key in ("reconstructions", "samples")]
    fig, ax = plt.subplots(figsize=(6.4, 0.62 * len(rows) + 0.8))
    _show(ax, tile(np.concatenate(rows), 10))
    ax.set_yticks([(i + 0.5) * (rows[0].shape[1] ** 0.5 + 1) for i in range(len(rows))])
    ax.set_yticklabels([f"σ = {r['sigma']:g}: {what}" for r in results
                        for what in ("reconstructions", "samples")], fontsize=8)
    ax.set_title(_title("Reconstructions and prior samples at each σ", context))
    return fig


@_styled
def linear_directions(directions, axes, context=""):
    """Decoder directions of linear models in the plane of the two principal axes.

    directions : {name: (D, 2) array}, each model's decoder direction per latent (columns);
    axes : (D, 2), the principal axes. Each direction is drawn normalised, projected on the
    plane (all of them lie in it once trained)."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for i, label in enumerate(("1st principal axis", "2nd principal axis")):
        ax.plot(*np.outer([-1, 1], np.eye(2)[i]).T, color="0.2", lw=3, alpha=0.3, label=label
                if i == 0 else label)
    for k, (name, W) in enumerate(directions.items()):
        d = axes.T @ (W / np.linalg.norm(W, axis=0))  # (2, Z): coordinates in the plane
        for j in range(d.shape[1]):
            ax.annotate("", xy=d[:, j], xytext=(0, 0),
                        arrowprops=dict(arrowstyle="->", color=f"C{k}", lw=2))
        ax.plot([], [], color=f"C{k}", lw=2, label=f"{name}: decoder directions")
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.2, 1.2)
    ax.set_aspect("equal")
    ax.set_xlabel("1st principal axis")
    ax.set_ylabel("2nd principal axis")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(_title("The subspace, and the axes", context))
    return fig


@_styled
def overfit_codes(x_sorted, recon_sorted, between, code, labels, n=12, context=""):
    """A 1-D code that memorises: training images in code order, their reconstructions, the
    decodes halfway from each to the next code along the line (``n`` of each), and all the
    codes on a line, coloured by label."""
    fig = plt.figure(figsize=(8.0, 5.2), layout="none")  # axes placed by hand
    top = fig.add_axes([0.05, 0.32, 0.9, 0.58])
    rows = np.concatenate([x_sorted[:n], recon_sorted[:n], np.clip(between[:n], 0, 1)])
    _show(top, tile(rows, n))
    top.set_title(_title("A 1-D code that memorises its training set", context))
    top.set_xlabel("rows: training images, in code order; their reconstructions; the decode "
                   "halfway to the next code")
    line = fig.add_axes([0.08, 0.1, 0.84, 0.12])
    for c in np.unique(labels):
        keep = labels == c
        line.scatter(code[keep], np.zeros(keep.sum()), s=12, color=plt.cm.tab10(int(c) % 10),
                     label=str(c))
    line.set_yticks([])
    line.set_xlabel("the code of each training image")
    line.legend(ncol=10, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 2.2), frameon=False)
    return fig


# --- inference: the ELBO identity, EM, the true posterior ---------------------------------------


@_styled
def elbo_identity_curves(curves, context=""):
    """log p(x), the ELBO and KL(q ‖ p(z|x)) (means over the data) against the encoder's
    training steps, with the decoder frozen: ``curves`` {"step", "log_px", "elbo", "kl"}."""
    fig, (ax, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.plot(curves["step"], curves["log_px"], label="log p(x)  (does not depend on q)")
    ax.plot(curves["step"], curves["elbo"], label="ELBO")
    ax.set_xlabel("Adam steps on the encoder alone")
    ax.set_ylabel("nats per example")
    ax.legend()
    right.plot(curves["step"], curves["kl"], color="C2", label="KL(q(z|x) ‖ p(z|x))")
    right.plot(curves["step"], curves["log_px"] - curves["elbo"], "k:",
               label="log p(x) − ELBO")
    right.set_yscale("log")
    right.set_xlabel("Adam steps on the encoder alone")
    right.legend()
    fig.suptitle(_title("log p(x) = ELBO + KL(q ‖ p(z|x)): a linear-Gaussian VAE", context))
    return fig


@_styled
def em_curves(histories, best, context=""):
    """The exact mean log-likelihood of each fit per iteration or epoch, and the optimum."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, h in histories.items():
        ax.plot(np.arange(len(h)), h, label=name)
    ax.axhline(best, color="0.3", ls=":", label="closed form (Tipping & Bishop)")
    low = min(min(h[min(2, len(h) - 1):]) for h in histories.values())
    ax.set_ylim(low - 0.1 * (best - low), best + 0.1 * (best - low) + 1e-3)
    ax.set_xlabel("EM iteration, or VAE epoch")
    ax.set_ylabel("mean log p(x) (nats)")
    ax.legend(fontsize=8)
    ax.set_title(_title("PPCA: EM, the closed form, and the linear VAE", context))
    return fig


@_styled
def true_posteriors(model, x, n=121, half_width=5.0, context=""):
    """For each image (rows of x (P, D)) and a 2-D VAE: the true posterior p(z|x) ∝ p(x|z) p(z)
    as a heat map, normalised on an n × n grid; the encoder's q(z|x) as its 1σ and 2σ ellipses;
    the image itself in the corner. Each panel is zoomed to where the two posteriors are: a
    first grid over [−w, w]² finds p(z|x)'s mean and spread, and the panel covers 4 of each
    one's standard deviations around p's and q's means (at least ±0.2)."""
    from matplotlib.patches import Ellipse

    u = np.linspace(-half_width, half_width, n)
    coarse = np.array([[a, b] for b in u for a in u], dtype=model.dtype)  # (n², 2)
    fig, axes = plt.subplots(1, len(x), figsize=(3.3 * len(x), 3.6))
    mu, logvar = model.encode(x)

    def posterior(p, grid):  # p(z|x) on the grid's points, normalised over them: (M,)
        log_post = -_grid_nll(model, x[p], grid) - 0.5 * (grid.astype(np.float64) ** 2).sum(1)
        post = np.exp(log_post - log_post.max())
        return post / post.sum()

    for p, ax in enumerate(np.atleast_1d(axes)):
        w = posterior(p, coarse)
        p_mean = w @ coarse  # (2,)
        p_sd = np.sqrt(np.maximum(w @ (coarse - p_mean) ** 2, (u[1] - u[0]) ** 2))  # (2,)
        sd = np.exp(0.5 * logvar[p])
        lo = np.minimum(p_mean - 4 * p_sd, mu[p] - 4 * sd)
        hi = np.maximum(p_mean + 4 * p_sd, mu[p] + 4 * sd)
        centre, half = (lo + hi) / 2, max(0.2, float((hi - lo).max()) / 2)
        a, b = (np.linspace(c - half, c + half, n) for c in centre)
        fine = np.array([[i, j] for j in b for i in a], dtype=model.dtype)  # (n², 2)
        ax.imshow(posterior(p, fine).reshape(n, n), origin="lower", cmap="Greys",
                  extent=[a[0], a[-1], b[0], b[-1]], aspect="auto")
        for k in (1, 2):
            ax.add_patch(Ellipse(mu[p], 2 * k * sd[0], 2 * k * sd[1], fill=False, color="C3",
                                 lw=1.2, ls="-" if k == 1 else "--"))
        inset = ax.inset_axes([0.0, 0.72, 0.28, 0.28])
        _show(inset, x[p].reshape(28, 28))
        ax.set_xlim(a[0], a[-1])
        ax.set_ylim(b[0], b[-1])
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
        ax.set_title("p(z|x) (grey), q(z|x) (red)", fontsize=9)
    fig.suptitle(_title("The true posterior and the encoder's guess (zoomed)", context))
    return fig


def _grid_nll(model, x, grid):
    """-log p(x | z) at every z of the grid (M, Z), for one image x (D,): (M,) float64."""
    heads, _ = model._decode_forward(grid)
    nll, _ = model._nll(heads, np.broadcast_to(x, heads[0].shape), need_grad=False)
    return nll.astype(np.float64)


@_styled
def confusion_matrix(counts, dataset=None, context=""):
    """Rows: the true class; columns: the predicted one; each cell the share of its row."""
    counts = np.asarray(counts)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = CLASS_NAMES.get(dataset) or [str(c) for c in range(len(counts))]
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(counts)):
        for j in range(len(counts)):
            if counts[i, j]:
                ax.text(j, i, f"{share[i, j]:.2f}".lstrip("0"), ha="center", va="center",
                        fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(counts)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(counts)), names, fontsize=8)
    ax.set_xlabel("predicted: argmax_y log p(x|y) + log p(y)")
    ax.set_ylabel("true class")
    ax.grid(False)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(_title(f"The CVAE as a classifier: {accuracy:.1%} correct", context))
    return fig


@_styled
def estimator_curves(ks, results, context="", gradients=None):
    """Estimates of the mean log p(x) against the number of samples k, one line per estimator
    (``{name: (len(ks), repeats) array}``): the mean over repeats, and each repeat as a dot.

    gradients : None, or ``{name: {"noise": (len(ks),), "bias": (len(ks),)}}`` with the same
    names (``estimator_gradients.gradient_noise_and_bias``, with "floor" too): a second panel
    draws the decoder gradient's noise (solid), bias (dashed) and the bias an unbiased estimator
    would show from the noise alone (dotted) against k, as fractions of the reference's norm.
    """
    fig, axes = plt.subplots(1, 1 if gradients is None else 2,
                             figsize=(6.4 if gradients is None else 11.5, 4.0), squeeze=False)
    ax = axes[0, 0]
    for i, (name, values) in enumerate(results.items()):
        ax.plot(ks, values.mean(axis=1), "o-", color=f"C{i}", label=name)
        for r in range(values.shape[1]):
            ax.scatter(ks, values[:, r], s=8, color=f"C{i}", alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("samples per example, k")
    ax.set_ylabel("estimated mean log p(x) (nats)")
    ax.legend()
    ax.set_title("the value, log p̂(x)", fontsize=9)
    if gradients is not None:
        ax = axes[0, 1]
        for i, name in enumerate(results):
            ax.plot(ks, gradients[name]["noise"], "o-", color=f"C{i}", label=f"{name}: noise")
            ax.plot(ks, gradients[name]["bias"], "s--", color=f"C{i}", label=f"{name}: bias")
            ax.plot(ks, gradients[name]["floor"], ":", color=f"C{i}", alpha=0.7,
                    label=f"{name}: the bias's floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples per example, k")
        ax.set_ylabel("‖·‖ / ‖reference gradient‖")
        ax.legend(fontsize=7)
        ax.set_title("its gradient for the decoder, ∇θ log p̂(x)", fontsize=9)
    fig.suptitle(_title("Estimating log p(x): the prior against the posterior", context))
    return fig


@_styled
def samples_side_by_side(models, n=36, rng_seed=0, context=""):
    """Decoded prior samples of each model of ``{name: model}``, side by side, from the same
    seed (ancestral sampling for a hierarchical VAE)."""
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 4.0))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items()):
        images = model.sample(n, rng=np.random.default_rng(rng_seed))
        _show(ax, tile(np.clip(images, 0, 1), int(math.ceil(math.sqrt(n)))))
        ax.set_title(name, fontsize=9)
    fig.suptitle(_title("Samples from the prior", context))
    return fig
