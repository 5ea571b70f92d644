"""Every definition of the project, built from its settings: `build_defs(settings)`. Dagster's
loader (dg, `dagster dev`, the step processes) gets `build_defs(Settings.from_env(os.environ))`."""
import os
import warnings

import dagster as dg

from cloud_assets.defs.analysis import assets as analysis
from cloud_assets.defs.audit import assets as audit
from cloud_assets.defs.automation import definitions as automation
from cloud_assets.defs.data import assets as data
from cloud_assets.defs.model import assets as model
from cloud_assets.defs.report import assets as report
from cloud_assets.defs.resources import build_resources, executor
from cloud_assets.defs.review import assets as review
from cloud_assets.plumbing.sharding import Sharding
from cloud_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    """Every asset, check, partition set, pool, job, schedule and sensor, the resources and the
    executor, as `settings` say."""
    sharding = Sharding(settings)
    with warnings.catch_warnings():  # the decorators' notes on Dagster's beta features, once per build
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = [a for group in (data, model, analysis, audit, review, report)
                  for a in group.build(settings, sharding)]
    return dg.Definitions.merge(
        dg.Definitions(assets=assets, resources=build_resources(settings), executor=executor(settings)),
        automation.build(settings))


def asset(defs: dg.Definitions, name: str):
    """The definition, as built (no resources bound), that makes the asset `name`: an AssetsDefinition
    (a multi-asset's, by any of its assets' names) or an observable SourceAsset; for `dg.materialize`."""
    key = dg.AssetKey(name)
    for built in defs.assets or ():
        if isinstance(built, dg.AssetsDefinition) and key in built.keys or isinstance(built, dg.SourceAsset) \
                and built.key == key:
            return built
    raise KeyError(f"{name}: no such asset")


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(Settings.from_env(os.environ))
