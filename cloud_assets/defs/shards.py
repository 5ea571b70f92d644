"""The partitioning of the per-image assets into shards (`CLOUD_ASSETS_SHARDS`), and the backfill
policy that fits the executor: one run for every shard on one machine, runs of a few shards each
where Celery workers or Kubernetes pods can take several at once.

With one shard (the default) nothing is partitioned: every asset is one step over every image.
"""
import dagster as dg

from cloud_assets.defs import settings
from cloud_assets.lib import shards

COUNT = int(settings.value(settings.SHARDS, "1") or 1)
PER_RUN = int(settings.value(settings.SHARDS_PER_RUN, "2") or 2)
PARTITIONS = dg.StaticPartitionsDefinition(shards.keys(COUNT)) if COUNT > 1 else None
SPREAD = bool(settings.value(settings.EXECUTOR))  # Celery or Kubernetes: runs spread over workers


def backfill_policy(per_image: bool) -> dg.BackfillPolicy | None:
    """A per-image asset's shards in runs of PER_RUN where the executor spreads runs, else in one
    run; every other asset in one run (which `dg launch --partition-range` requires of them all)."""
    if COUNT == 1:
        return None
    if per_image and SPREAD:
        return dg.BackfillPolicy.multi_run(max_partitions_per_run=PER_RUN)
    return dg.BackfillPolicy.single_run()


PER_IMAGE = {"partitions_def": PARTITIONS, "backfill_policy": backfill_policy(True)}
WHOLE = {"backfill_policy": backfill_policy(False)}


def launch_options() -> str:
    """What `dg launch --assets ...` needs to materialize every shard in one run ('' unsharded)."""
    keys = shards.keys(COUNT)
    return f"--partition-range {keys[0]}...{keys[-1]}" if COUNT > 1 else ""


def shard_keys(context) -> list:
    """The shards this step computes: its partition keys, or [None] (every image) when unsharded."""
    return list(context.partition_keys) if PARTITIONS is not None else [None]


def shard(value, key):
    """A per-image input's value for shard `key` (the whole value when unsharded)."""
    return value if key is None else value[key]


def positions(value, key, group: str = "val"):
    """Shard `key`'s rows of `group` in the unsharded order, from a per-image input's shard value
    (None when unsharded)."""
    return None if key is None else shards.positions_of(value, group)


def pack(values: dict):
    """A per-image asset's output: shard key -> value, or the one value when unsharded."""
    return values[None] if list(values) == [None] else values


def select(names, key):
    """(the names of shard `key` among `names`, their positions in `names`)."""
    return shards.select(names, key, COUNT)
