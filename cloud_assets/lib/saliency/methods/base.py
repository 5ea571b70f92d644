"""A saliency method: the notebook's class activation map with its own channel weights (the one hook).

Every method shares the compiled engine (`lib.saliency.engine.Engine`): A, the Grad-CAM layer's output, and
d(y_c)/dA for every class come from one pass; the method says how A's channels are weighted; the
rest is the notebook's Grad-CAM (weighted sum of the channels, minus its mean, divided by its spectral
norm; `lib.saliency.engine.upsample` on read) and guided backprop, whose product is the guided map.
"""
from __future__ import annotations


class SaliencyMethod:
    """Subclass, name it, and override `channel_weights` (in `keras.ops`, run on the device)."""

    name = ""      # as the settings and the stored maps name it
    cam = ""       # the class activation map's name on the report's pages, e.g. "Grad-CAM"

    @property
    def guided(self) -> str:
        """The guided map's name (the map times guided backprop), e.g. "Guided Grad-CAM"."""
        return f"Guided {self.cam}"

    def channel_weights(self, a, grads):
        """`(classes, n, k)` weights of A's channels, from A `(n, h, w, k)` and d(y_c)/dA `(classes, n, h, w, k)`."""
        raise NotImplementedError

    def reduce(self, a, grads, input_grad):
        """The per-image reductions, inside the compiled pass: (guided backprop `(n, H, W)` from the
        input gradient `(n, H, W, 3)`, the class activation map at the layer's resolution
        `(classes, n, h, w)`, before `lib.saliency.engine.upsample`)."""
        from keras import ops

        g = ops.mean(input_grad, axis=3)
        mean = ops.mean(g, axis=(1, 2), keepdims=True)
        std = ops.std(g, axis=(1, 2), keepdims=True) + 1e-5
        guided = ops.clip((g - mean) / std * 0.1 + 0.5, 0, 1)
        cams = ops.einsum("nhwk,cnk->cnhw", a, self.channel_weights(a, grads))
        cams = cams - ops.mean(cams, axis=(2, 3), keepdims=True)
        norms = ops.max(ops.svd(cams, compute_uv=False), axis=-1)                 # spectral norm
        return guided, (cams + 1e-10) / (norms[..., None, None] + 1e-10)
