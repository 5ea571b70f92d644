"""cloud-assets: audit the labels of a multi-label image dataset through a classifier's mistakes."""
import os

# TensorFlow's C++ log level, for every process that imports the package before TensorFlow (INFO and
# WARNING lines off; the few lines it prints before its logging starts cannot be turned off)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load(asset: str):
    """The value of the latest materialization of `asset` recorded by the Dagster instance of
    DAGSTER_HOME (as `make` sets it: var/dagster), for exploring in Python or Jupyter: a `lib.store.Bundle`
    (`.table(name)`, `.array(name)`, `.json(name)`, `.names()`), or a `lib.shards.Shards` read as one
    for a sharded per-image asset. LookupError when the instance has no materialization of it."""
    from cloud_assets.explore import load as _load

    return _load(asset)
