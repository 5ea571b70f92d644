import dagster as dg

from cloud_assets.defs.data import assets as data_assets
from cloud_assets.defs.resources import build_resources

DATA_ASSETS = [data_assets.label_table, data_assets.train_val_split, data_assets.image_cache,
               data_assets.val_masks, data_assets.dark_image_counts]


def materialize(data_dir, var_dir, assets=DATA_ASSETS, model_path="", run_config=None, selection=None,
                instance=None, **dataset_config):
    return dg.materialize(assets, resources=build_resources(str(data_dir), str(model_path), str(var_dir),
                                                            **dataset_config),
                          raise_on_error=False, run_config=run_config, selection=selection, instance=instance)


def failure_message(result) -> str:
    """The messages of every failed step's error and its causes."""
    messages = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.event_specific_data.error
            while error is not None:
                messages.append(error.message)
                error = error.cause
    return "\n".join(messages)


def checks(result) -> dict:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}
