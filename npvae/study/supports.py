"""Which models each generic study function handles, and the refusal of the others.

The study functions read a model through what its kind promises. Three kinds of promise:

    plain_vae(model, what)        one layer of latents, prior N(0, I), q(z|x) = N(mu, diag e^logvar),
                                  no condition: the PPCA identity, the per-example q* of inference
    diagonal_posterior(model, what)  q(z|x) a diagonal Gaussian (one layer or two): the KL per
                                  dimension
    latent_variable(model, what)  a model with q(z|x), a prior and an ELBO: not an Autoencoder,
                                  whose code is one point and has neither

A function that cannot handle a model refuses it with a TypeError naming the function, the model
and the models it supports, instead of returning numbers computed for another model.
"""

from ..core.vae import VAE
from ..models.autoencoder import Autoencoder
from ..models.hvae import HVAE
from ..models.m2 import SemiSupervisedVAE


def is_autoencoder(model):
    """True for the plain autoencoder (a deterministic code, no q, no prior, no ELBO)."""
    return isinstance(model, Autoencoder)


def is_semi_supervised(model):
    """True for M2, the semi-supervised VAE: a CVAE with a classifier q(y|x), whose label is
    latent where it is missing."""
    return isinstance(model, SemiSupervisedVAE)


def is_hierarchical(model):
    """True for the hierarchical VAE (two layers of latents, p(z₁|z₂) not N(0, I))."""
    return isinstance(model, HVAE)


def plain_vae(model, what):
    """Refuse the models whose q or p(z) ``what`` does not handle: it assumes one layer of
    latents with prior N(0, I), q(z|x) = N(mu, diag e^logvar) and no condition."""
    if (not isinstance(model, VAE) or is_hierarchical(model) or not has_diagonal_posterior(model)
            or model.conditional):
        raise TypeError(f"{what} supports the plain VAE (npvae.VAE: one layer of latents, "
                        f"prior N(0, I), no condition), not a {type(model).__name__}.")


def has_diagonal_posterior(model):
    """True when q(z|x) is the VAE's diagonal Gaussian, the heads mu and logvar alone (not an
    Autoencoder's code, nor a full-covariance posterior's extra head)."""
    return tuple(getattr(model, "encoder_heads", ())) == VAE.encoder_heads


def diagonal_posterior(model, what):
    """Refuse a model whose q(z|x) is not a diagonal Gaussian (one layer or two): ``what``
    splits the KL over the latent dimensions, which a full covariance does not allow."""
    latent_variable(model, what)
    if not has_diagonal_posterior(model):
        raise TypeError(f"{what} needs a diagonal Gaussian q(z|x) (VAE, CVAE or HVAE), whose "
                        f"KL splits over the dimensions; a {type(model).__name__}'s does not.")


def latent_variable(model, what, instead=""):
    """Refuse an Autoencoder: ``what`` needs q(z|x) and a prior, which its code has not.
    ``instead`` names what to call for an autoencoder, if anything."""
    if is_autoencoder(model):
        hint = f" For an Autoencoder use {instead}." if instead else ""
        raise TypeError(f"{what} needs a latent-variable model (VAE, CVAE or HVAE: q(z|x), a "
                        f"prior and an ELBO); an Autoencoder's code is one point, with none "
                        f"of them.{hint}")
