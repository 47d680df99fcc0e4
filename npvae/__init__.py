"""npvae: a variational autoencoder in plain NumPy, with every gradient written out by hand.

    model = npvae.VAE(784)                      # 784-400-20, Bernoulli decoder, float32
    opt = npvae.Adam(model.params, lr=1e-3)
    loss, grads, stats = model.loss_and_grads(x_batch)
    opt.step(grads)

The folders are the layers, each importing only from those above it in this list:

    core/     the math a reader opens first: layers, distributions, the VAE and its loss,
              the optimizers, input checks. Imports nothing but NumPy.
    models/   models built on the core: the conditional VAE, the hierarchical VAE, the
              plain autoencoder, the softmax classifier, the semi-supervised VAE (M2).
    study/    what the source texts claim, measured: evaluation (log p(x), the KL per
              dimension), PPCA and EM, amortised inference, regularity.
    verify/   the checks a reader runs: finite differences, objective checks, planted bugs.
    run/      the machinery: data, training loop, checkpoints and runs, plots, the CLI, the
              scikit-learn-style estimator.
"""

import importlib

from .core import checks, distributions, layers, optim
from .core.errors import CheckpointError, DataError, NpvaeError, TooLargeError
from .core.optim import SGD, Adam
from .core.vae import VAE, VAEConfig
from .models.autoencoder import Autoencoder
from .models.classifier import Classifier
from .models.m2 import SemiSupervisedVAE
from .models.cvae import CVAE
from .models.hvae import HVAE
from .models.fullcov import FullCovarianceVAE
from .study import evaluate, inference
from .study.latent import interpolate
from .verify import gradcheck
from .run import data
from .run.checkpoint import load, save
from .run.estimator import VAEEstimator
from .run.training import train

__version__ = "0.1.0"

# The two studies that need SciPy load on first use (``npvae.ppca``, ``npvae.regularity``), so
# that ``import npvae``, and so every training run, does not pay for importing SciPy: 1.2 s and
# 66 MB on the VM of docs/performance.md. tests/test_structure.py holds ``import npvae`` to that.
_SCIPY_STUDIES = {"ppca": "npvae.study.ppca", "regularity": "npvae.study.regularity"}


def __getattr__(name):
    if name in _SCIPY_STUDIES:
        module = importlib.import_module(_SCIPY_STUDIES[name])
        globals()[name] = module  # the next access is a plain attribute
        return module
    raise AttributeError(f"module 'npvae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SCIPY_STUDIES))

__all__ = ["VAE", "VAEConfig", "Adam", "SGD", "gradcheck", "NpvaeError", "DataError",
           "CheckpointError", "TooLargeError", "train", "load", "save", "CVAE", "VAEEstimator",
           "Autoencoder", "HVAE", "FullCovarianceVAE", "Classifier", "SemiSupervisedVAE",
           "evaluate", "inference", "ppca", "regularity", "data",
           "distributions", "layers", "optim", "checks", "interpolate", "__version__"]
