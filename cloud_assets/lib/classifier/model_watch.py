"""Has the model file changed since a cursor? (The sensor's logic, without Dagster.)"""
from __future__ import annotations

from pathlib import Path

from cloud_assets.lib.files import sha256


def changed(path: str | Path, cursor: str | None) -> tuple[bool, str | None]:
    """(changed, new cursor): the cursor is the file's SHA-256; a missing file changes nothing."""
    path = Path(path)
    if not path.is_file():
        return False, cursor
    digest = sha256(path)
    return digest != cursor, digest
