"""npvae: a variational autoencoder in plain NumPy, with every gradient written out by hand.

    model = npvae.VAE(784)                      # 784-400-20, Bernoulli decoder, float32
    opt = npvae.Adam(model.params, lr=1e-3)
    loss, grads, stats = model.loss_and_grads(x_batch)
    opt.step(grads)
"""

from . import evaluate, gradcheck
from .autoencoder import Autoencoder
from .checkpoint import load, save
from .cvae import CVAE
from .errors import CheckpointError, DataError, NpvaeError
from .estimator import VAEEstimator
from .hvae import HVAE
from .optim import SGD, Adam
from .training import train
from .vae import VAE, VAEConfig

VAE._trainer = staticmethod(train)  # model.fit(x, ...) is train(model, x, ...); see VAE.fit
VAE._evaluate = evaluate  # cvae.classify, hvae.log_likelihood, ...; see VAE._evaluate

__version__ = "0.1.0"

__all__ = ["VAE", "VAEConfig", "Adam", "SGD", "gradcheck", "NpvaeError", "DataError",
           "CheckpointError", "train", "load", "save", "CVAE", "VAEEstimator", "Autoencoder", "HVAE",
           "__version__"]
