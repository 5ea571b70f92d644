"""Files and folders: a file's digest, and folders written whole or not at all (filled under a
temporary name beside their final one, then renamed, so that a failure leaves the previous folder, or
none, never a half-written one)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of the file at `path`, read `chunk` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def written_folder(final: Path, replaces: set[str] | None = None):
    """A new temporary folder beside `final` to fill; when the block succeeds it replaces `final`
    (two renames), when it fails it is removed and `final` stays as it was. With `replaces` (the
    names the writer makes), a `final` that is a file or holds anything else is refused (ValueError)
    before anything is written: it holds what someone else made."""
    final = Path(final)
    if replaces is not None and final.exists():
        if not final.is_dir():
            raise ValueError(f"{final}: is a file; expected a folder to write (or none)")
        foreign = sorted(p.name for p in final.iterdir() if p.name not in replaces)
        if foreign:
            raise ValueError(f"{final}: holds {', '.join(foreign[:5])}, which this command did not write; move "
                             f"{'them' if len(foreign) > 1 else 'it'} away or choose another output folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.old"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def folder_version(root: Path, files: list[str], folders: list[str], settings: dict) -> str:
    """A SHA-256 that changes when `root`'s `files` change (their bytes), when a file of its `folders`
    is added, removed or rewritten (names, sizes and modification times: reading every image would
    cost as much as decoding it), or when `settings` (how the folder is read) change."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in files:
        path = root / name
        h.update(f"{name}\0".encode())
        if path.is_file():
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    for name in folders:
        folder = root / name
        entries = sorted(os.scandir(folder), key=lambda e: e.name) if folder.is_dir() else []
        for e in entries:
            st = e.stat()
            h.update(f"{name}/{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
