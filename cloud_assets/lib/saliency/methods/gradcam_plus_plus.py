"""Grad-CAM++ (Chattopadhay et al. 2018), guided: each channel weighted by the positive gradients,
each location's share given by the second- and third-order terms, alpha = g^2 / (2 g^2 + sum(A) g^3)
(0 where the gradient is 0), as pytorch-grad-cam's `GradCAMPlusPlus` computes them."""
from cloud_assets.lib.saliency.methods.base import SaliencyMethod

EPS = 1e-7


class GradCAMPlusPlus(SaliencyMethod):
    name, cam = "gradcam++", "Grad-CAM++"

    def channel_weights(self, a, grads):
        from keras import ops

        g2 = grads * grads
        sum_a = ops.sum(a, axis=(1, 2))[None, :, None, None, :]                   # (1, n, 1, 1, k)
        alpha = g2 / (2 * g2 + sum_a * g2 * grads + EPS)
        alpha = ops.where(ops.not_equal(grads, 0), alpha, ops.zeros_like(alpha))
        return ops.sum(alpha * ops.relu(grads), axis=(2, 3))
