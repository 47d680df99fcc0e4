"""Walk through the latent space between pairs of test images, in a straight line and on a
great circle.

    python demos/interpolate.py --dataset fashion-mnist

For each pair (a, b) of test images it decodes points on two paths from mu(a) to mu(b):
    linear      (1 - t) mu(a) + t mu(b)
    spherical   slerp: [sin((1-t)Ω) mu(a) + sin(tΩ) mu(b)] / sin Ω,  cos Ω = the cosine of the
                angle between mu(a) and mu(b)
In 20 dimensions a draw from N(0, I) has norm ≈ √20 almost surely, so the prior's mass sits on
a thin shell; the straight line between two codes cuts inside it, towards codes the decoder
rarely saw, while the great circle stays near the shell (White 2016, "Sampling generative
networks"). The KL term is what makes every point on either path decode to a plausible image:
a plain autoencoder leaves holes between its codes (see demos/latent_spaces.py).

It prints, for each path, the mean pixel distance between consecutive decodes (the step size)
and its unevenness (the largest step over the mean step, 1 for a path that changes at an even
pace; mean ± sd over the pairs), and the norm of the code halfway along the path against √Z,
the radius of the prior's shell. It writes interpolation.png to --out: rows of [input a,
decoded path, input b].
"""

import sys

import numpy as np

import _common
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=10,
                       out="figures/interpolate/{dataset}")
    p.add_argument("--pairs", type=int, default=4, help="pairs of test images")
    p.add_argument("--steps", type=int, default=10, help="decoded points along each path")
    return p


def main(argv=None):
    args, rng, d, (x_train, x_val, _) = _common.start(build_parser(), argv)
    model = _common.model_from_args(args)
    history = _common.train(model, args, x_train, x_val, rng)

    # Pairs of test images from different classes, a different pair of classes for each path:
    # the first image of each class in a random order of the test set.
    pick = np.random.default_rng([args.seed, 7])
    order = pick.permutation(len(d.x_test))
    classes = pick.permutation(np.unique(d.y_test))  # (C,) in random order
    classes = np.resize(classes, 2 * args.pairs)  # repeats only if there are too few classes
    first = [order[np.argmax(d.y_test[order] == c)] for c in classes]  # (2P,) test indices
    a, b = np.array(first[0::2]), np.array(first[1::2])
    context = plots.run_label(args.dataset, args.epochs, model.latent_dim)
    fig = plots.interpolations(model, d.x_test[a], d.x_test[b], steps=args.steps,
                               context=context)
    _common.save_figures({"interpolation": fig}, args.out)
    return {"history": history, "paths": path_steps(model, d.x_test[a], d.x_test[b], args.steps)}


def path_steps(model, x_a, x_b, steps):
    """Print and return, per path kind, the step sizes' mean and unevenness (max / mean step),
    mean ± sd over the pairs, and the mean norm of the halfway code."""
    mu_a, mu_b = model.encode(x_a)[0], model.encode(x_b)[0]  # each (P, Z)
    t = np.linspace(0, 1, steps)
    result = {}
    for name, path in (("linear", plots.lerp), ("spherical", plots.slerp)):
        z = path(mu_a, mu_b, t)  # (P, T, Z)
        x = model.decode(z.reshape(-1, z.shape[-1])).reshape(len(z), steps, -1)  # (P, T, D)
        step = np.linalg.norm(np.diff(x, axis=1), axis=2)  # (P, T - 1)
        mean, uneven = step.mean(axis=1), step.max(axis=1) / step.mean(axis=1)  # (P,) each
        halfway = float(np.linalg.norm(path(mu_a, mu_b, np.array([0.5]))[:, 0], axis=1).mean())
        sd = (lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0)
        result[name] = {"step": (float(mean.mean()), sd(mean)),
                        "unevenness": (float(uneven.mean()), sd(uneven)), "halfway": halfway}
        print(f"{name:9s} path: step {mean.mean():.3f} ± {sd(mean):.3f} (pixel distance), "
              f"unevenness {uneven.mean():.2f} ± {sd(uneven):.2f} (max step / mean step), "
              f"|z| halfway {halfway:.2f} against √Z = {np.sqrt(model.latent_dim):.2f} "
              f"(mean ± sd over {len(step)} pairs)")
    return result


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
