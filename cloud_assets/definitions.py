from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # the project is found from the package's own dg.toml, installed or not
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
