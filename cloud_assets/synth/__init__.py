"""Synthetic stand-in for the "Understanding Clouds" data, in its exact Kaggle layout."""
from cloud_assets.synth.dataset import SynthConfig, synthesize

__all__ = ["SynthConfig", "synthesize"]
