"""Models built on the core VAE: the conditional VAE, the hierarchical VAE, the autoencoder,
the softmax classifier (discriminative) and the semi-supervised VAE M2."""
