"""Models built on the core VAE: the conditional VAE, the hierarchical VAE, the autoencoder."""
