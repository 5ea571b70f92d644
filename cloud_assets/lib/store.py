"""The array store: each asset's value is a folder of `.npy`, `.parquet` and `.json` files.

A value is written into a staging folder, then published by pointing the asset's name (a
symlink) at it with one atomic rename. A run that dies mid-write leaves only a staging folder,
named after its host and process, which the next `stage` on that host removes once the process
is gone; readers see the previous value until the new one is complete. Publishing keeps the value
it replaced (a run that started before may still be reading it) and removes older ones; it holds a
lock on `.versions/`, so two runs publishing one asset at once never remove each other's value.
Arrays are memory-mapped on read; new arrays have their disk space reserved up front, so a full
disk is an error when the array is created, not a crash while it is filled.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import mmap
import os
import shutil
import socket
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

    def has(self, name: str) -> bool:
        return any((self.path / f"{name}{suffix}").is_file() for suffix in (".npy", ".parquet", ".json"))

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.path.iterdir() if p.suffix in (".npy", ".parquet", ".json"))

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        return np.load(self.path / f"{name}.npy", mmap_mode="r" if mmap else None)

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / f"{name}.parquet")

    def json(self, name: str):
        return json.loads((self.path / f"{name}.json").read_text())

    # writing (staging bundles only)
    def new_array(self, name: str, shape, dtype) -> np.memmap:
        """A writable memory-mapped `.npy` to fill in place, its disk space reserved (OSError ENOSPC
        here if the disk is full, rather than SIGBUS while writing)."""
        path = self.path / f"{name}.npy"
        out = np.lib.format.open_memmap(path, mode="w+", shape=tuple(shape), dtype=dtype)
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, path.stat().st_size)
        finally:
            os.close(fd)
        return out

    def put(self, name: str, value) -> None:
        if isinstance(value, np.ndarray):
            np.save(self.path / f"{name}.npy", value)
        elif isinstance(value, pd.DataFrame):
            value.to_parquet(self.path / f"{name}.parquet", index=False)
        else:
            (self.path / f"{name}.json").write_text(json.dumps(value, indent=1, default=_jsonable))

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir())


class Part:
    """One named part of an asset's value, declared once as an attribute of its `Value` class: the
    attribute's name is the part's name in the store. Read on a value (`LabelTable(bundle).rows`);
    written through the class (`LabelTable.rows.put(staged, rows)`). `group` and `axis`: for a
    per-image value, the group of images (`train`, `val`, `test`) its rows follow and, for an array,
    its image axis (what a sharded value is reassembled by)."""
    kind = ""

    def __init__(self, group: str | None = None, axis: int = 0):
        self.group, self.axis, self.name = group, axis, ""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, value, owner=None):
        if value is None:
            return self
        return getattr(value.source, self.kind)(self.name)

    def put(self, staged: "Bundle", data) -> None:
        staged.put(self.name, data)


class Array(Part):
    kind = "array"

    def new(self, staged: "Bundle", shape, dtype) -> np.memmap:
        """A writable memory-mapped array of this part in `staged` (`Bundle.new_array`)."""
        return staged.new_array(self.name, shape, dtype)


class Table(Part):
    kind = "table"


class Document(Part):
    kind = "json"


class Value:
    """An asset's value, typed: a subclass declares its parts (`Array`, `Table`, `Document`) as
    attributes and wraps what the IO manager loads (a `Bundle`, or a per-image value's `Shards`)."""

    def __init__(self, source):
        self.source = source

    @classmethod
    def parts(cls) -> dict[str, Part]:
        return {name: part for klass in reversed(cls.__mro__) for name, part in vars(klass).items()
                if isinstance(part, Part)}

    @classmethod
    def of(cls, **data) -> dict:
        """The value to return from an asset, part name -> data; every name must be a declared part."""
        unknown = set(data) - set(cls.parts())
        if unknown:
            raise KeyError(f"{cls.__name__}: no part named {', '.join(sorted(unknown))}")
        return data

    @classmethod
    def layout(cls) -> tuple[dict, dict]:
        """(arrays: name -> (group, image axis), tables: name -> group) of the parts that follow images."""
        parts = cls.parts().values()
        return ({p.name: (p.group, p.axis) for p in parts if isinstance(p, Array) and p.group},
                {p.name: p.group for p in parts if isinstance(p, Table) and p.group})


def release(*arrays) -> None:
    """Drop the pages of memory-mapped arrays from this process's resident memory. The data stays
    in the files (and the page cache); loops over images call this after each batch, so their
    memory stays one batch however many images there are. Plain arrays are left alone."""
    for array in arrays:
        release(*getattr(array, "parts", ()))  # a lib.shards.ShardedArray: its shards' arrays
        mapped = getattr(array, "_mmap", None)  # np.memmap keeps its mmap here, slices share it
        if mapped is not None:
            mapped.madvise(mmap.MADV_DONTNEED)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store {type(v).__name__} as JSON")


class StoreError(OSError):
    """Writing a value failed (the disk is full); the previous value is kept."""


HOST = socket.gethostname()
SEP = "__"  # staging and version folders: <name>__<time>__<host>__<pid>__<random>


class Store:
    """Folders under `root`: `<name>` -> `.versions/<name>__...` symlinks, `.staging/` for writes."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def stage(self, name: str) -> Bundle:
        self.sweep()
        stamp = time.strftime("%Y%m%dT%H%M%S")
        path = self.root / ".staging" / SEP.join([name, stamp, HOST, str(os.getpid()), uuid.uuid4().hex[:8]])
        path.mkdir(parents=True)
        return Bundle(path)

    @contextlib.contextmanager
    def staging(self, name: str):
        """A staging bundle, removed if the code writing it fails; a full disk becomes a StoreError
        that names the folder and the free space."""
        staged = self.stage(name)
        try:
            yield staged
        except BaseException as e:
            self.discard(staged)
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                free = shutil.disk_usage(self.root).free / 2 ** 20
                raise StoreError(errno.ENOSPC, f"{self.root}: no space left on the device while writing '{name}' "
                                 f"({free:.0f} MiB free); the previous value is kept") from e
            raise

    def sweep(self) -> None:
        """Remove staging folders that this host's processes left behind when they died."""
        staging = self.root / ".staging"
        for path in staging.iterdir() if staging.is_dir() else ():
            parts = path.name.rsplit(SEP, 3)
            if len(parts) == 4 and parts[1] == HOST and parts[2].isdigit() and not _alive(int(parts[2])):
                shutil.rmtree(path, ignore_errors=True)

    def publish(self, name: str, staged: Bundle) -> Bundle:
        """Make `staged` the value of `name` atomically; keep the value it replaces, remove older ones."""
        for f in staged.path.rglob("*"):  # data on disk before the switch
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        # named after `name`, which a shard's value extends (`<asset>@<shard>`), for the sweep below
        final = self.root / ".versions" / SEP.join([name, staged.path.name.split(SEP, 1)[1]])
        with self._versions_locked() as versions:
            os.replace(staged.path, final)
            link = self.root / name
            previous = link.resolve() if link.is_symlink() else None
            tmp = self.root / f".{name}.{uuid.uuid4().hex[:8]}.link"
            os.symlink(os.path.relpath(final, self.root), tmp)
            os.replace(tmp, link)
            for old in versions.glob(f"{name}{SEP}*"):
                if old not in (final, previous):
                    shutil.rmtree(old, ignore_errors=True)
        return Bundle(final)

    @contextlib.contextmanager
    def _versions_locked(self):
        """`.versions/`, held by this process alone: two runs publishing one asset at once would
        otherwise each sweep the version the other just published, leaving the name dangling."""
        versions = self.root / ".versions"
        versions.mkdir(parents=True, exist_ok=True)
        with open(versions / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield versions

    def get(self, name: str) -> Bundle:
        link = self.root / name
        if not link.exists():
            raise FileNotFoundError(f"{link}: '{name}' has not been materialized yet")
        return Bundle(link.resolve())

    def stored(self, name: str) -> list[str]:
        """The stored names of asset `name`: itself and its shards' (`<name>@<shard>`)."""
        return sorted(p.name for p in self.root.glob(f"{name}*") if p.is_symlink()
                      and (p.name == name or p.name.startswith(f"{name}@")))

    def remove(self, name: str) -> None:
        """Remove the value `name` and its kept versions."""
        with self._versions_locked() as versions:
            (self.root / name).unlink(missing_ok=True)
            for old in versions.glob(f"{name}{SEP}*"):
                shutil.rmtree(old, ignore_errors=True)

    def discard(self, staged: Bundle) -> None:
        shutil.rmtree(staged.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process that its parent has not reaped yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
