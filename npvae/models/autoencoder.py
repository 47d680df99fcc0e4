"""A plain autoencoder: a deterministic code, trained on the reconstruction alone.

    encoder   x ─► [dense ─► act] × n ─► h ─► dense ─► code            z = enc(x)     (B, Z)
    decoder   z ─► [dense ─► act] × n ─► h ─► dense ─► logits or mean   x̂ = dec(z)     (B, D)

    loss = (1/B) Σ_b NLL(x_b | dec(enc(x_b)))     (nats per example)

With the Gaussian likelihood of fixed σ the NLL is ‖x − x̂‖² / (2σ²) plus a constant: squared
error. It is the VAE with neither noise nor KL: the code is one point, not a distribution, and
nothing asks the codes to fill a region of latent space. That is the contrast the regularity demo
(``demos/regularity.py``) measures. The layers, likelihoods and the decoder's backward are the
VAE's; the encoder has one head, ``code``, instead of ``mu`` and ``logvar``.

Symbols: B batch, D data, H hidden, Z code size.
"""

from ..core import checks
from ..core.layers import dense_backward, dense_forward, mlp_backward, mlp_forward
from ..core.vae import VAE


class Autoencoder(VAE):
    """An autoencoder with the VAE's layers and likelihoods, and a deterministic code.

    Parameters: as for ``VAE`` (``likelihood`` "bernoulli" for binary-cross-entropy, "gaussian"
    for squared error scaled by 1/(2σ²)). ``sample(n)`` decodes z ~ N(0, I), which an
    autoencoder was never trained for: the regularity demo shows what comes out.
    """

    encoder_heads = ("code",)

    def loss_and_grads(self, x, eps=None, beta=1.0, rng=None, objective="elbo", k=1,
                       free_bits=0.0, cond=None):
        """The mean reconstruction NLL in nats per example, and its gradient.

        An autoencoder has no noise and no KL: eps, beta and rng are accepted (so that
        ``npvae.train`` drives it like a VAE) and have no effect; the IWAE objective, k > 1,
        free bits and a condition have no meaning here and are refused.

        Returns loss, grads (the keys of ``params``), stats ("loss", "recon", "kl" = 0).
        """
        if objective != "elbo" or k != 1 or free_bits or cond is not None:
            raise ValueError("an Autoencoder has one deterministic code: no IWAE objective, "
                             "no k > 1 samples, no free bits, no condition.")
        x = self._check_x(x)
        p, B = self.params, x.shape[0]
        # ---------------------------------------------------------------- forward
        h_enc, enc_caches = mlp_forward(x, p, "encoder", self._depth, self._act_forward)
        code, code_cache = dense_forward(h_enc, p["code.W"], p["code.b"])  # (B, Z)
        heads, decoder_cache = self._decode_forward(code)  # each (B, D)
        nll, dnll_dheads = self._nll(heads, x)  # (B,), each (B, D)
        loss = nll.mean()

        # ---------------------------------------------------------------- backward
        grads = dict.fromkeys(p)
        # 1. Output layer: loss = (1/B) Σ_b NLL_b, so each head's gradient is ∂NLL/∂head / B
        #    (Bernoulli: (sigmoid(logits) − x) / B; Gaussian: (x̂ − x) / (sigma² B)).
        dheads = [d / B for d in dnll_dheads]  # each (B, D)
        # 2. Decoder: back through the heads and the trunk to the code, dcode : (B, Z).
        dcode = self._decode_backward(dheads, decoder_cache, grads)
        # 3. The code head, and the encoder trunk. No sampler and no KL: the code's gradient
        #    is the reconstruction's alone, which is why nothing keeps the codes together.
        dh_enc, grads["code.W"], grads["code.b"] = dense_backward(dcode, code_cache)
        mlp_backward(dh_enc, enc_caches, grads, "encoder", self._act_backward,
                     need_dinput=False)

        stats = {"loss": float(loss), "recon": float(loss), "kl": 0.0}
        return float(loss), grads, stats

    def encode(self, x, cond=None):
        """The code: x : (B, D)  ->  z = enc(x) : (B, Z)."""
        x = checks.as_batch(x, self.input_dim, self.dtype)
        h_enc, _ = mlp_forward(x, self.params, "encoder", self._depth, self._act_forward)
        return dense_forward(h_enc, self.params["code.W"], self.params["code.b"])[0]

    def reconstruct(self, x, cond=None):
        """dec(enc(x)): (B, D)."""
        return self.decode(self.encode(x))

    def nll(self, x, eps=None, cond=None):
        """-log p(x | dec(enc(x))) per example, forward only: (B,). eps is ignored."""
        x = self._check_x(x)
        heads, _ = self._decode_forward(self.encode(x))
        return self._nll(heads, x, need_grad=False)[0]
