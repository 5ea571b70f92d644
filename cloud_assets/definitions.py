import dagster as dg

import cloud_assets.defs


@dg.definitions
def defs() -> dg.Definitions:
    # loaded from the package itself, so that an installed wheel needs no pyproject.toml beside it
    return dg.load_defs(defs_root=cloud_assets.defs)
