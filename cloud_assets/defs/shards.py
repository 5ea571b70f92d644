"""The partitioning of the per-image assets into shards (`CLOUD_ASSETS_SHARDS`), and the backfill
policy that fits the executor: one run for every shard on one machine, runs of a few shards each
where Celery workers or Kubernetes pods can take several at once.

With one shard (the default) nothing is partitioned: every asset is one step over every image.
Every value of a per-image asset records the shard count it was computed with (`partitioning`),
so that a reader finds out when the count has changed since (the IO manager, `check_stored`).
"""
import dagster as dg

from cloud_assets.defs import settings
from cloud_assets.lib import shards

COUNT = settings.load_time(settings.SHARDS)
PER_RUN = settings.load_time(settings.SHARDS_PER_RUN)
PARTITIONS = dg.StaticPartitionsDefinition(shards.keys(COUNT)) if COUNT > 1 else None
SPREAD = bool(settings.load_time(settings.EXECUTOR))  # Celery or Kubernetes: runs spread over workers
RECORD = {"shards": COUNT}  # what every per-image value records of its partitioning


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


def rerun_command() -> str:
    """The command that re-runs every asset, the per-image ones in every shard of the current count."""
    return f"dg launch --assets '*' {launch_options()}".strip()


def check_count(images: int) -> None:
    """Refuse more shards than `images` (those of train.csv), before anything is written."""
    if COUNT > max(images, 1):
        raise settings.SettingError(
            f"{settings.SHARDS}={COUNT}: expected at most {images}, the number of images in train.csv (a shard "
            f"of a few thousand images is best; see the README's Scaling out)")


class PartitioningError(ValueError):
    """Values of a per-image asset computed with another shard count than the current one."""


def check_stored(name: str, records: dict) -> None:
    """PartitioningError when the stored values of the per-image asset `name` (stored name -> its
    partitioning record) were computed with another shard count than COUNT."""
    other = sorted({r["shards"] for r in records.values() if r is not None and r != RECORD})
    if other:
        counts = " and ".join(map(str, other))
        raise PartitioningError(
            f"{name}: its stored values were computed with {counts} shard(s) ({', '.join(sorted(records))}), but "
            f"{settings.SHARDS} is now {COUNT}; re-run the per-image assets with the new count: {rerun_command()} "
            f"(make demo does), which also removes the stale shards")


def stale(name: str, stored: list[str]) -> list[str]:
    """Of the stored values `stored` of the per-image asset `name`, those of another shard count."""
    current = {f"{name}@{key}" for key in shards.keys(COUNT)} if COUNT > 1 else {name}
    return [s for s in stored if s not in current]


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
    """A per-image asset's output: shard key -> value, or the one value when unsharded; each value
    (a staging Bundle or a dict) records the shard count it was computed with."""
    for value in values.values():
        if isinstance(value, dict):
            value[shards.RECORD] = RECORD
        else:
            value.put(shards.RECORD, RECORD)
    return values[None] if list(values) == [None] else values


def select(names, key):
    """(the names of shard `key` among `names`, their positions in `names`)."""
    return shards.select(names, key, COUNT)
