"""Input checks run inside the asset that reads the input, before anything is written.

A failed blocking check is reported, then the step fails: the previous materialization stays
and downstream assets do not run.
"""

from collections.abc import Iterable

import dagster as dg

from cloud_assets.lib.data.labels import DatasetError, Problem

MAX_LISTED = 20


def spec(asset: str, name: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


def results(specs: Iterable[dg.AssetCheckSpec], problems: list[Problem]):
    """One AssetCheckResult per spec, listing the problems it found (ERROR if blocking, else WARN)."""
    for s in specs:
        found = [p for p in problems if p.check == s.name]
        listed = "\n".join(f"- {p}" for p in found[:MAX_LISTED])
        more = f"\n- ... and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        yield dg.AssetCheckResult(
            asset_key=s.asset_key, check_name=s.name, passed=not found,
            severity=dg.AssetCheckSeverity.ERROR if s.blocking else dg.AssetCheckSeverity.WARN,
            metadata={"problems": len(found), "details": dg.MetadataValue.md(listed + more or "none")})


def raise_blocking(specs: Iterable[dg.AssetCheckSpec], problems: list[Problem]) -> None:
    blocking = {s.name for s in specs if s.blocking}
    found = [p for p in problems if p.check in blocking]
    if found:
        first = "; the first 5" if len(found) > 5 else ""
        raise DatasetError(f"{len(found)} input problem(s){first}:\n" + "\n".join(str(p) for p in found[:5]))
