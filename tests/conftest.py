import shutil
from pathlib import Path

import pytest

from cloud_assets.synth import SynthConfig, synthesize

SMALL = SynthConfig(train=48, test=8, height=350, width=525, seed=3, workers=1, dark_rate=0.08, band_rate=0.2)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A small synthetic dataset in the Kaggle layout, made once per test session (read-only)."""
    out = tmp_path_factory.mktemp("data") / "small"
    synthesize(out, SMALL, progress=lambda m: None)
    return out


@pytest.fixture
def dataset_copy(small_dataset, tmp_path) -> Path:
    """A private copy of the small dataset that a test may damage."""
    out = tmp_path / "data"
    shutil.copytree(small_dataset, out)
    return out
