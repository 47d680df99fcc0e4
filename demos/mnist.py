"""The main job: train the standard VAE on MNIST and draw what it learned.

    python demos/mnist.py                        # MNIST (downloaded on first use)
    python demos/mnist.py --dataset fashion-mnist      # Fashion-MNIST
    python demos/mnist.py --data-dir ~/data            # IDX files you already have

Offline, without the MNIST training images, it trains on the MNIST test split that comes with
npvae (8,000 images to train on, 2,000 held out), and says so; --no-fallback stops instead.

The model is the one of Kingma & Welling (2014): 784-400-20, ReLU, a Bernoulli decoder on
logits, Adam with lr 1e-3 and batches of 128. The pixels are binarized afresh each epoch
(dynamic binarization: each grey level p becomes 1 with probability p), so the Bernoulli
likelihood is a true likelihood of binary data. A random 5,000 (at most a tenth) of the
training images are held out for the validation curves.

It writes to --out (default figures/mnist, or figures/fashion-mnist):
    reconstructions.png   test images above, decode(mu(x)) below
    samples.png           decoded means of z ~ N(0, I)
    generation.png        z ~ p(z), then x ~ p(x|z): each z's mean above its binary draws
    loss_curves.png       train and validation -ELBO, reconstruction and KL per epoch
    kl_per_dim.png        the KL of each latent dimension on the test set
    checkpoint.npz        the trained model; ``npvae plot checkpoint.npz --out DIR`` redraws
and prints the test ELBO and an importance-weighted estimate of log p(x) on a statically
binarized test set (one fixed draw of the binary pixels, seeded by --seed).
"""

import sys
import time

import numpy as np

import _common
from npvae.study import evaluate
from npvae.run import plots


def build_parser():
    p = _common.parser(__doc__.splitlines()[0], epochs=20, out="figures/{dataset}")
    p.add_argument("--binarize", choices=["dynamic", "static", "none"], default="dynamic",
                   help="binarize the training pixels afresh each epoch, once, or never")
    p.add_argument("--k", type=int, default=100,
                   help="importance samples per example for the log-likelihood estimate")
    p.add_argument("--n-ll", type=int, default=2000,
                   help="test examples for the (slower) log-likelihood estimate")
    return p


def main(argv=None):
    args, rng, d, (x_train, x_val, x_test) = _common.start(build_parser(), argv)
    binarize = None if args.binarize == "none" else args.binarize
    model = _common.model_from_args(args)

    start = time.perf_counter()
    # out_dir: a checkpoint (and history.json) after every epoch, for `npvae plot` and resuming;
    # extra: what `npvae plot` needs to know to redraw the figures.
    history = _common.train(model, args, x_train, x_val, rng, binarize=binarize,
                            out_dir=args.out,
                            extra={"dataset": args.dataset, "data_dir": args.data_dir,
                                   "source": d.source, "seed": args.seed,
                                   "binarize": binarize, "demo": "mnist.py"})
    train_seconds = time.perf_counter() - start

    result = evaluate.elbo(model, x_test, rng=np.random.default_rng([args.seed, 5]))
    n_ll = min(args.n_ll, len(x_test))
    log_p = evaluate.log_likelihood(model, x_test[:n_ll], k=args.k,
                                    rng=np.random.default_rng([args.seed, 6]))  # (n_ll,)
    print(f"trained {args.epochs} epochs in {train_seconds:.1f} s")
    print(f"test ELBO           {result['elbo']:9.2f} nats  "
          f"(recon {result['recon']:.2f}, KL {result['kl']:.2f}; {len(x_test):,} examples)")
    print(f"test log p(x) ≳     {log_p.mean():9.2f} nats  "
          f"(IWAE, k = {args.k}, {n_ll:,} examples, ± {log_p.std() / np.sqrt(n_ll):.2f} s.e.)")

    context = plots.run_label(args.dataset, args.epochs, model.latent_dim)
    _common.save_figures({
        "reconstructions": plots.reconstructions(model, d.x_test[:20], context=context),
        "samples": plots.prior_samples(model, 100, rng=np.random.default_rng([args.seed, 7]),
                                       context=context),
        "generation": plots.means_and_draws(model, rng=np.random.default_rng([args.seed, 8]),
                                            context=context),
        "loss_curves": plots.loss_curves(history, context),
        "kl_per_dim": plots.kl_bars(evaluate.kl_per_dimension(model, x_test), context),
    }, args.out)
    return {"history": history, "test": result, "log_likelihood": float(log_p.mean())}


if __name__ == "__main__":
    _common.run(main, sys.argv[1:])
