"""The math a reader opens first: layers, distributions, the VAE and its loss, the optimizers,
and the checks of what users pass in. Imports nothing but NumPy (and the standard library)."""
