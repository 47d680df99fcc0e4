"""Three facts about codes, measured on MNIST: narrow codes learn, wide codes copy; depth at a
fixed code size; and how small the encoder's σ is next to the spread of its means.

    python demos/autoencoders.py                    # 38 min on a 2-core machine at load 11; idle untimed

1. **Undercomplete against overcomplete.** Two autoencoders 784-Z-784 (linear encoder and
   decoder, squared error, grey pixels), one with a code of Z = 16, one as wide as the input
   (Z = 784). The overcomplete one reconstructs test digits far better, and that is the
   problem: it has learned to pass its input through. The number that shows it is the *gain*
   of a small random perturbation δ (std 0.05 per pixel) added to a test digit,
   ‖f(x + δ) − f(x)‖ / ‖δ‖: a code that learned the digits' few directions lets a small share
   through (a rank-16 projection passes √(16/784) ≈ 0.14 of a random δ); a copier passes
   nearly all of it.
2. **Depth at a fixed code size.** Autoencoders with Z = 2 and 0, 1 or 2 hidden layers
   (784-2, 784-400-2, 784-400-200-2, decoders mirrored, squared error): the test squared error
   per image against depth. With no hidden layer the best 2-D code is PCA's; hidden layers let
   the same two numbers say more.
3. **Far-apart means are punctual posteriors, up to scale.** A 784-400-2 VAE (Bernoulli)
   trained with β = 0 (the noise kept, no KL) and with β = 1: the encoder's σ relative to the
   spread of its means over the test set (per dimension, the median σ over the standard
   deviation of mu, then the mean over the two dimensions). Without the KL nothing stops the
   means from drifting apart while σ shrinks, so each q(z|x) becomes a point at the scale of
   the code cloud; with the KL, σ stays a visible fraction of that spread.

Every row is mean ± sd over --seeds (one model per seed). Writes autoencoders.png: the
reconstructions of a test digit, the same digit plus noise and a shuffled digit by both
autoencoders of part 1; the test error against depth; the test codes of the β = 0 and β = 1
VAEs with each code's 1σ extent.
"""

import sys

import numpy as np

import _common
import npvae
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=5, hidden=None, latent=2,
                       out="figures/autoencoders/{dataset}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one model per seed for every row")
    p.add_argument("--codes", type=int, nargs=2, default=[16, 784],
                   help="part 1: the narrow and the wide code sizes")
    p.add_argument("--width", type=int, default=400, help="part 2 and 3: first hidden size")
    p.add_argument("--n-eval", type=int, default=1000, help="test images scored")
    return p


def mean_sd(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) if len(v) > 1 else 0.0)


def squared_error(model, x):
    """The mean over images of ‖x − f(x)‖²."""
    return float(((x - model.reconstruct(x)) ** 2).sum(axis=1).mean())


def gain(model, x, rng, scale=0.05):
    """The mean of ‖f(x + δ) − f(x)‖ / ‖δ‖ over images, δ ~ N(0, scale² I): (float)."""
    delta = (scale * rng.standard_normal(x.shape)).astype(x.dtype)
    moved = np.linalg.norm(model.reconstruct(x + delta) - model.reconstruct(x), axis=1)
    return float((moved / np.linalg.norm(delta, axis=1)).mean())


def train(model, args, x, seed, **kwargs):
    npvae.train(model, x, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                rng=np.random.default_rng([seed, 1]), verbose=False, **kwargs)
    return model


def part1(args, x_train, x_test):
    """Narrow and wide linear autoencoders: test error and perturbation gain per seed."""
    rows = {Z: {"test": [], "gain": []} for Z in args.codes}
    models = {}
    for seed in args.seeds:
        for Z in args.codes:
            model = train(npvae.Autoencoder(784, hidden_dims=(), latent_dim=Z,
                                            likelihood="gaussian", seed=seed),
                          args, x_train, seed, binarize=None)
            rows[Z]["test"].append(squared_error(model, x_test))
            rows[Z]["gain"].append(gain(model, x_test, np.random.default_rng([seed, 2])))
            models.setdefault(Z, model)
        print(f"  seed {seed}: " + "; ".join(
            f"Z = {Z}: test error {rows[Z]['test'][-1]:.2f}, gain {rows[Z]['gain'][-1]:.3f}"
            for Z in args.codes))
    return {Z: {k: mean_sd(v) for k, v in r.items()} for Z, r in rows.items()}, models


def part2(args, x_train, x_test):
    """Autoencoders with Z = 2 and 0, 1, 2 hidden layers: test squared error per seed."""
    shapes = [(), (args.width,), (args.width, args.width // 2)]
    rows = {h: [] for h in shapes}
    for seed in args.seeds:
        for h in shapes:
            model = train(npvae.Autoencoder(784, hidden_dims=h, latent_dim=2,
                                            likelihood="gaussian", seed=seed),
                          args, x_train, seed, binarize=None)
            rows[h].append(squared_error(model, x_test))
        print(f"  seed {seed}: " + ", ".join(f"{len(h)} hidden {rows[h][-1]:.2f}"
                                             for h in shapes))
    return {h: mean_sd(v) for h, v in rows.items()}


def sigma_over_spread(model, x):
    """The encoder's σ next to the spread of its means: for each latent dimension the median
    σ over the images divided by the standard deviation of mu over them; the mean over dims."""
    mu, logvar = model.encode(x)  # each (N, Z)
    return float((np.median(np.exp(0.5 * logvar), axis=0) / mu.std(axis=0)).mean())


def part3(args, x_train, x_test):
    """784-400-2 VAEs with β = 0 and β = 1: σ relative to the spread of the means, per seed."""
    rows = {0.0: [], 1.0: []}
    codes = {}
    for seed in args.seeds:
        for beta in rows:
            model = train(npvae.VAE(784, hidden_dims=(args.width,), latent_dim=2, seed=seed),
                          args, x_train, seed, binarize="dynamic", beta=beta)
            rows[beta].append(sigma_over_spread(model, x_test))
            if beta not in codes:
                codes[beta] = model.encode(x_test)
        print(f"  seed {seed}: σ / spread of the means: β = 0 {rows[0.0][-1]:.4f}, "
              f"β = 1 {rows[1.0][-1]:.4f}")
    return {beta: mean_sd(v) for beta, v in rows.items()}, codes


def main(argv=None):
    args, _, d = _common.parse_and_load(build_parser(), argv)
    x_train, _, _ = _common.split(d, args.seeds[0], binarize=None)
    x_test = d.x_test[:args.n_eval]  # grey pixels: squared error is measured on them
    n = len(args.seeds)
    narrow, wide = args.codes

    print(f"1. linear autoencoders 784-Z-784, squared error, {args.epochs} epochs:")
    one, models = part1(args, x_train, x_test)
    for Z in args.codes:
        print(f"   Z = {Z:3d}: test squared error {one[Z]['test'][0]:7.2f} ± "
              f"{one[Z]['test'][1]:.2f}; gain of a small random δ {one[Z]['gain'][0]:.3f} ± "
              f"{one[Z]['gain'][1]:.3f}  (mean ± sd over {n} seeds)")
    print(f"   the wide code passes {one[wide]['gain'][0] / one[narrow]['gain'][0]:.1f} times "
          f"as much of δ as the narrow one (a rank-{narrow} projection would pass "
          f"{np.sqrt(narrow / 784):.2f}): it copies its input instead of learning the digits")

    print(f"2. autoencoders with Z = 2, squared error, {args.epochs} epochs:")
    two = part2(args, x_train, x_test)
    for h, (m, s) in two.items():
        shape = "-".join(str(v) for v in (784, *h, 2))
        print(f"   {len(h)} hidden layers ({shape}): test squared error {m:.2f} ± {s:.2f}")

    print(f"3. 784-{args.width}-2 VAEs, Bernoulli, {args.epochs} epochs:")
    three, codes = part3(args, x_train, x_test)
    for beta, (m, s) in three.items():
        print(f"   β = {beta:g}: the encoder's σ is {m:.4f} ± {s:.4f} of the spread of its "
              f"means  (mean ± sd over {n} seeds)")
    print(f"   without the KL each q(z|x) is {three[1.0][0] / three[0.0][0]:.0f} times "
          f"narrower, relative to the code cloud, than with it: a point, up to scale")

    context = plots.run_label(args.dataset, args.epochs, None)
    picks = x_test[:1]
    _common.save_figures({"autoencoders": figure(models, picks, two, codes, args, context)},
                         args.out)
    return {"codes": one, "depth": two, "sigma": three}


def figure(models, x, depth, codes, args, context):
    """Part 1's reconstructions | part 2's error against depth | part 3's codes with 1σ."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    rng = np.random.default_rng(0)
    noisy = np.clip(x + 0.3 * rng.standard_normal(x.shape), 0, 1).astype(x.dtype)
    shuffled = x[:, rng.permutation(784)]
    inputs = np.concatenate([x, noisy, shuffled])  # (3, D)
    rows = [inputs] + [np.clip(m.reconstruct(inputs), 0, 1) for m in models.values()]
    with plots.style():
        fig = plt.figure(figsize=(13, 4.2))
        grid = fig.add_gridspec(1, 4, width_ratios=[1.1, 1.2, 1, 1])
        ax = fig.add_subplot(grid[0])
        ax.imshow(plots.tile(np.concatenate(rows), 3), vmin=0, vmax=1)
        ax.set_xticks([14, 43, 72], ["digit", "digit + noise", "shuffled"])
        ax.set_yticks([14, 43, 72], ["input", *(f"Z = {Z}" for Z in models)])
        ax.grid(False)
        ax.set_title("1. what comes back")
        ax = fig.add_subplot(grid[1])
        m = [v[0] for v in depth.values()]
        s = [v[1] for v in depth.values()]
        ax.errorbar(range(len(m)), m, yerr=s, marker="o", capsize=4)
        ax.set_xticks(range(len(m)), [f"{len(h)}\n" + "-".join(map(str, (784, *h, 2)))
                                      for h in depth])
        ax.set_xlabel("hidden layers (shape)")
        ax.set_ylabel("test squared error per image")
        ax.set_title("2. depth at Z = 2")
        for j, (beta, (mu, logvar)) in enumerate(codes.items()):
            ax = fig.add_subplot(grid[2 + j])
            sd = np.exp(0.5 * logvar)
            ax.scatter(mu[:, 0], mu[:, 1], s=2, color="C0", label="mean of q(z|x)")
            for i in range(0, len(mu), 20):
                ax.add_patch(Ellipse(mu[i], 2 * sd[i, 0], 2 * sd[i, 1], fill=False,
                                     color="C3", lw=0.6))
            ax.plot([], [], color="C3", lw=0.6, label="1σ of every 20th q(z|x)")
            ax.set_xlabel("z₁")
            ax.set_ylabel("z₂")
            ax.set_title(f"3. VAE codes, β = {beta:g}")
            ax.legend(loc="upper right", fontsize=7)
        fig.suptitle(plots._title("Codes: copying, depth, and punctual posteriors", context))
    return fig


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
