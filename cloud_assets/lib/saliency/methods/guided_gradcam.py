"""Guided Grad-CAM, the notebook's: each channel weighted by the spatial mean of its gradient."""
from cloud_assets.lib.saliency.methods.base import SaliencyMethod


class GuidedGradCAM(SaliencyMethod):
    name, cam = "guided-gradcam", "Grad-CAM"

    def channel_weights(self, a, grads):
        from keras import ops

        return ops.mean(grads, axis=(2, 3))
