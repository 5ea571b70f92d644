"""Shards: the images split by a stable key of their name, so that the per-image assets can be
partitioned and computed on several machines, and read back as a whole in the unsharded order.

An image's shard is the CRC-32 of its name modulo the number of shards: it never depends on the
other images, so adding images does not move any. A shard's value of a per-image asset records,
for each group of rows it holds (a split's images), their positions in the unsharded order
(`positions_<group>`), and its layout: which arrays hold which group along which axis, and which
tables list which group (`layout.json`). `Shards` reads the shards' values back as one: arrays
and tables in the unsharded order, so that the dataset-wide steps see what an unsharded run gives.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

RECORD = "partitioning"  # the JSON document in which a per-image value records its shard count
IN_MEMORY = 64 * 2 ** 20  # arrays up to this size are read whole; larger ones are indexed image by image


def keys(n: int) -> list[str]:
    """The shard keys of `n` shards, zero-padded so that they sort as numbers."""
    width = len(str(max(n - 1, 0)))
    return [f"{k:0{width}d}" for k in range(n)]


def assign(names, n: int) -> np.ndarray:
    """The shard number of each image name."""
    return np.array([zlib.crc32(str(name).encode()) % n for name in names], np.int64)


def select(names, key: str | None, n: int) -> tuple[list, np.ndarray]:
    """(the names of shard `key`, their positions in `names`); every name when `key` is None."""
    if key is None:
        return list(names), np.arange(len(names))
    positions = np.flatnonzero(assign(names, n) == int(key))
    return [names[i] for i in positions], positions


def positions_of(bundle, group: str) -> np.ndarray:
    """A shard's rows of `group`, as their positions in the unsharded order."""
    return bundle.array(f"positions_{group}")


def layout(positions: dict, arrays: dict, tables: dict) -> dict:
    """A shard's layout, as values to store beside its own: `positions` group -> positions in the
    unsharded order, `arrays` name -> (group, image axis), `tables` name -> group."""
    return {**{f"positions_{group}": np.asarray(pos, np.int64) for group, pos in positions.items()},
            "layout": {"arrays": {k: list(v) for k, v in arrays.items()}, "tables": tables}}


class ShardedArray:
    """A large array spread over shards, indexed by its unsharded position on its image axis
    (`a[i]`, `a[c, i]`, `a[:, i]`); other indexing is refused."""

    def __init__(self, parts: list, positions: list[np.ndarray], axis: int):
        self.parts, self.axis = parts, axis
        total = sum(len(p) for p in positions)
        self.where, self.local = np.empty(total, np.int64), np.empty(total, np.int64)
        for s, pos in enumerate(positions):
            self.where[pos], self.local[pos] = s, np.arange(len(pos))
        shape = list(parts[0].shape)
        shape[axis] = total
        self.shape, self.dtype = tuple(shape), parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if len(key) <= self.axis or not isinstance(key[self.axis], (int, np.integer)):
            raise IndexError(f"a sharded array is indexed by one image at axis {self.axis}, got {key!r}")
        i = int(key[self.axis])
        return self.parts[self.where[i]][key[:self.axis] + (int(self.local[i]),) + key[self.axis + 1:]]


class Shards(Mapping):
    """The values of a partitioned asset: partition key -> Bundle; a per-image asset's read as a
    whole (`array`, `table`, `json`: the unsharded value, from each shard's layout record)."""

    def __init__(self, bundles: Mapping):
        self.bundles = dict(sorted(bundles.items()))
        first = next(iter(self.bundles.values()))
        self.layout: dict = first.json("layout") if first.has("layout") else {}  # empty: not per-image

    def __getitem__(self, key):
        return self.bundles[key]

    def __iter__(self) -> Iterator:
        return iter(self.bundles)

    def __len__(self) -> int:
        return len(self.bundles)

    def _positions(self, group: str) -> list[np.ndarray]:
        return [positions_of(b, group) for b in self.bundles.values()]

    def array(self, name: str):
        """The unsharded array: in memory when small, else a ShardedArray."""
        group, axis = self.layout["arrays"][name]
        parts = [b.array(name) for b in self.bundles.values()]
        positions = self._positions(group)
        if sum(p.nbytes for p in parts) > IN_MEMORY:
            return ShardedArray(parts, positions, axis)
        whole = np.concatenate([np.asarray(p) for p in parts], axis=axis)
        order = np.empty(whole.shape[axis], np.int64)
        order[np.concatenate(positions)] = np.arange(whole.shape[axis])
        return np.take(whole, order, axis=axis)

    def table(self, name: str) -> pd.DataFrame:
        """The shards' tables as one: in the unsharded order for a table of a group of rows, else
        concatenated in shard order."""
        frames = [b.table(name) for b in self.bundles.values()]
        frame = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)  # a shard may be empty
        group = self.layout["tables"].get(name)
        if group is None:
            return frame
        return frame.iloc[np.argsort(np.concatenate(self._positions(group)), kind="stable")].reset_index(drop=True)

    def json(self, name: str):
        """A JSON document the shards share (the first shard's)."""
        return next(iter(self.bundles.values())).json(name)
