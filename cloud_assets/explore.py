"""`cloud_assets.load`: an asset's latest value, from the instance's event log and the array store."""
from __future__ import annotations

from pathlib import Path

import dagster as dg

from cloud_assets.lib.shards import Shards
from cloud_assets.lib.store import Bundle, Store


def load(asset: str, instance: dg.DagsterInstance | None = None):
    """See `cloud_assets.load`; `instance` defaults to the one DAGSTER_HOME configures."""
    own = instance is None
    instance = instance or dg.DagsterInstance.get()
    try:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        if not records:
            raise LookupError(f"{asset}: no materialization recorded by the Dagster instance at "
                              f"{instance.root_directory}; materialize it first (make demo, or dg launch --assets "
                              f"{asset})")
        materialization = records[0].asset_materialization
        metadata = materialization.metadata if materialization else {}
        if "path" in metadata:
            return Bundle(Path(str(metadata["path"].value)))
        # a shard's materialization: its value and its siblings' in the same store
        store = Store(Path(str(metadata["stored_in"].value)))
        return Shards({name.split("@", 1)[1]: store.get(name) for name in store.stored(asset) if "@" in name})
    finally:
        if own:
            instance.dispose()
