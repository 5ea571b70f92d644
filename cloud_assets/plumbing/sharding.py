"""The partitioning of the per-image assets into shards (`CLOUD_ASSETS_SHARDS`), and the backfill
policy that fits the executor: one run for every shard on one machine, runs of a few shards each
where Celery workers or Kubernetes pods can take several at once.

With one shard (the default) nothing is partitioned: every asset is one step over every image.
Every value of a per-image asset records the shard count it was computed with (`partitioning`),
so that a reader finds out when the count has changed since (the IO manager, `check_stored`).
"""
import dataclasses
import functools
import inspect
import time
from typing import Any

import dagster as dg

from cloud_assets.plumbing import checks
from cloud_assets.lib import shards
from cloud_assets.settings import SettingError, Settings

SHARDS = Settings.variable("shards")


class PartitioningError(ValueError):
    """Values of a per-image asset computed with another shard count than the current one."""


def record(count: int) -> dict:
    """What every per-image value records of its partitioning."""
    return {"shards": count}


def rerun_command(count: int) -> str:
    """The command that re-runs the per-image assets (those upstream of the fold audit's reader) in
    every shard of `count`."""
    return f"dg launch --assets 'not group:audit+' {launch_options(count)}".strip()


def launch_options(count: int) -> str:
    """What `dg launch --assets ...` needs to materialize every shard in one run ('' unsharded)."""
    keys = shards.keys(count)
    return f"--partition-range {keys[0]}...{keys[-1]}" if count > 1 else ""


def check_stored(name: str, records: dict, count: int) -> None:
    """PartitioningError when the stored values of the per-image asset `name` (stored name -> its
    partitioning record) were computed with another shard count than `count`."""
    other = sorted({r["shards"] for r in records.values() if r is not None and r != record(count)})
    if other:
        counts = " and ".join(map(str, other))
        raise PartitioningError(
            f"{name}: its stored values were computed with {counts} shard(s) ({', '.join(sorted(records))}), but "
            f"{SHARDS} is now {count}; re-run the per-image assets with the new count: {rerun_command(count)} "
            f"(make demo does), which also removes the stale shards")


def stale(name: str, stored: list[str], count: int) -> list[str]:
    """Of the stored values `stored` of the per-image asset `name`, those of another shard count than `count`."""
    current = {f"{name}@{key}" for key in shards.keys(count)} if count > 1 else {name}
    return [s for s in stored if s not in current]


def check_count(count: int, images: int) -> None:
    """Refuse more shards than `images` (those of train.csv), before anything is written."""
    if count > max(images, 1):
        raise SettingError(
            f"{SHARDS}={count}: expected at most {images}, the number of images in train.csv (a shard "
            f"of a few thousand images is best; see the documentation's Scaling out page)")


class Sharding:
    """The shards of the per-image assets and the backfill policies, from `settings`: the keyword
    arguments of an asset decorator (`per_image_kwargs`, `whole`) and the `per_image` decorator."""

    def __init__(self, settings: Settings):
        self.count, self.per_run = settings.shards, settings.shards_per_run
        self.spread = bool(settings.executor)  # Celery or Kubernetes: runs spread over workers
        self.partitions = dg.StaticPartitionsDefinition(shards.keys(self.count)) if self.count > 1 else None
        self.per_image_kwargs: dict[str, Any] = {"partitions_def": self.partitions,
                                                 "backfill_policy": self.backfill_policy(True)}
        self.whole: dict[str, Any] = {"backfill_policy": self.backfill_policy(False)}

    def backfill_policy(self, per_image: bool) -> dg.BackfillPolicy:
        """A per-image asset's shards in runs of `per_run` where the executor spreads runs, else in one
        run; every other asset in one run too, which `dg launch --partition-range` requires of every
        asset it launches (with the shards' range, or with the audit's folds')."""
        if per_image and self.spread and self.count > 1:
            return dg.BackfillPolicy.multi_run(max_partitions_per_run=self.per_run)
        return dg.BackfillPolicy.single_run()

    def shard_keys(self, context) -> list:
        """The shards this step computes: its partition keys, or [None] (every image) when unsharded."""
        return list(context.partition_keys) if self.partitions is not None else [None]

    def per_image(self, decorator, value_types: dict, summarize=None, check=None, **definition):
        """Make `compute(context, shard, **inputs) -> (values, facts)`, which computes one `Shard`, a
        per-image asset: `decorator(**definition)` (`dg.asset` or `dg.multi_asset`) with the shards'
        partitions and backfill policy. The step runs `compute` once per shard of its partitions, each
        per-image input given as that shard's value; `values` is output name -> a staging Bundle or a
        dict (only the selected outputs of a multi-asset). Each value gets its layout record (from
        `value_types`: output name -> its `lib.store.Value` class, whose parts say the group of images
        they follow) and its partitioning record, and the shards' values are packed into one output.
        `summarize(facts, seconds)`, from every shard's `facts`, gives the metadata (output name ->
        metadata). `check = (specs, find)`: `find(context, shard, **inputs)` lists the problems of a
        shard, found for every shard before anything is written and reported as those checks."""
        layouts = {name: value_type.layout() for name, value_type in value_types.items()}

        def wrap(compute):
            signature = inspect.signature(compute)

            @functools.wraps(compute)
            def step(context, **inputs):
                shared: dict = {}
                steps = [Shard(key, shared, self.count) for key in self.shard_keys(context)]

                def own(shard):
                    return {k: v[shard.key] if isinstance(v, shards.Shards) else v for k, v in inputs.items()}
                if check is not None:
                    specs, find = check
                    problems = [p for shard in steps for p in find(context, shard, **own(shard))]
                    yield from checks.results(specs, problems)
                    checks.raise_blocking(specs, problems)
                start, values, facts = time.monotonic(), {}, []
                for shard in steps:
                    out, fact = compute(context, shard, **own(shard))
                    for name, value in out.items():
                        arrays, tables = layouts[name]
                        if shard.key is not None:
                            groups = {g for g, _ in arrays.values()} | set(tables.values())
                            layout = shards.layout({g: p for g, p in shard.positions.items() if g in groups},
                                                   arrays, tables)
                            _put(value, layout)
                        _put(value, {shards.RECORD: record(self.count)})
                        values.setdefault(name, {})[shard.key] = value
                    facts.append(fact)
                metadata = summarize(facts, time.monotonic() - start) if summarize else {}
                for name, by_key in values.items():
                    yield dg.Output(by_key[None] if list(by_key) == [None] else by_key, output_name=name,
                                    metadata=metadata.get(name, {}))

            step.__signature__ = signature.replace(
                parameters=[p for n, p in signature.parameters.items() if n != "shard"])
            return decorator(**definition, **self.per_image_kwargs)(step)
        return wrap


@dataclasses.dataclass
class Shard:
    """One shard of a step's images, as a per-image asset's body sees it (key None: every image,
    unsharded). It remembers the positions, in the unsharded order, of the rows it selects or reads,
    for the layout record; `once` keeps what the step's shards share (a loaded model)."""
    key: str | None
    shared: dict
    count: int
    positions: dict = dataclasses.field(default_factory=dict)

    @property
    def where(self) -> str:
        """' shard <key>' for log lines ('' unsharded)."""
        return f" shard {self.key}" if self.key is not None else ""

    def select(self, names: list, group: str) -> list:
        """This shard's names among `names`, the rows of `group` in the unsharded order."""
        chosen, positions = shards.select(names, self.key, self.count)
        if self.key is not None:
            self.positions[group] = positions
        return chosen

    def rows(self, value, group: str = "val"):
        """The positions, in the unsharded order, of the rows of `group` in this shard's `value` of a
        per-image input (None unsharded)."""
        if self.key is None:
            return None
        self.positions[group] = shards.positions_of(value, group)
        return self.positions[group]

    def once(self, name: str, make):
        """`make()`, computed by the step's first shard that asks and shared with the others."""
        if name not in self.shared:
            self.shared[name] = make()
        return self.shared[name]


def _put(value, records: dict) -> None:
    """Store `records` (name -> array or JSON document) in a staging Bundle or a dict value."""
    for name, entry in records.items():
        if isinstance(value, dict):
            value[name] = entry
        else:
            value.put(name, entry)
