"""The saliency methods, by name: adding one is a module with a `SaliencyMethod` subclass and its
line here."""
from cloud_assets.lib.saliency.methods.base import SaliencyMethod
from cloud_assets.lib.saliency.methods.gradcam_plus_plus import GradCAMPlusPlus
from cloud_assets.lib.saliency.methods.guided_gradcam import GuidedGradCAM

METHODS = {m.name: m for m in (GuidedGradCAM, GradCAMPlusPlus)}
DEFAULT = GuidedGradCAM.name  # the notebook's


def method(name: str = DEFAULT) -> SaliencyMethod:
    """The method registered as `name`; ValueError naming the registered ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"saliency method {name!r}: expected one of {', '.join(METHODS)}")
    return METHODS[name]()


__all__ = ["DEFAULT", "METHODS", "SaliencyMethod", "method"]
