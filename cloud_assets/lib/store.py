"""The array store: each asset's value is a folder of `.npy`, `.parquet` and `.json` files.

A value is written into a staging folder, then published by pointing the asset's name (a
symlink) at it with one atomic rename. A run that dies mid-write leaves only a staging folder;
readers see the previous value until the new one is complete. Arrays are memory-mapped on read.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd


class Bundle:
    """A published (or staging) value: named arrays, tables and JSON documents in one folder."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Bundle({self.path})"

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.path.iterdir() if p.suffix in (".npy", ".parquet", ".json"))

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        return np.load(self.path / f"{name}.npy", mmap_mode="r" if mmap else None)

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / f"{name}.parquet")

    def json(self, name: str):
        return json.loads((self.path / f"{name}.json").read_text())

    # writing (staging bundles only)
    def new_array(self, name: str, shape, dtype) -> np.ndarray:
        """A writable memory-mapped `.npy` to fill in place; flushed when published."""
        return np.lib.format.open_memmap(self.path / f"{name}.npy", mode="w+", shape=tuple(shape), dtype=dtype)

    def put(self, name: str, value) -> None:
        if isinstance(value, np.ndarray):
            np.save(self.path / f"{name}.npy", value)
        elif isinstance(value, pd.DataFrame):
            value.to_parquet(self.path / f"{name}.parquet", index=False)
        else:
            (self.path / f"{name}.json").write_text(json.dumps(value, indent=1, default=_jsonable))

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir())


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store {type(v).__name__} as JSON")


class Store:
    """Folders under `root`: `<name>` -> `.versions/<name>-<stamp>` symlinks, `.staging/` for writes."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def stage(self, name: str) -> Bundle:
        path = self.root / ".staging" / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return Bundle(path)

    def publish(self, name: str, staged: Bundle) -> Bundle:
        """Make `staged` the value of `name` atomically; the previous value's folder is removed."""
        for f in staged.path.rglob("*"):  # data on disk before the switch
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        versions = self.root / ".versions"
        versions.mkdir(parents=True, exist_ok=True)
        final = versions / staged.path.name
        os.replace(staged.path, final)
        link = self.root / name
        previous = link.resolve() if link.is_symlink() else None
        tmp = self.root / f".{name}.{uuid.uuid4().hex[:8]}.link"
        os.symlink(os.path.relpath(final, self.root), tmp)
        os.replace(tmp, link)
        if previous and previous != final and previous.exists():
            shutil.rmtree(previous, ignore_errors=True)
        return Bundle(final)

    def get(self, name: str) -> Bundle:
        link = self.root / name
        if not link.exists():
            raise FileNotFoundError(f"{link}: '{name}' has not been materialized yet")
        return Bundle(link.resolve())

    def discard(self, staged: Bundle) -> None:
        shutil.rmtree(staged.path, ignore_errors=True)
