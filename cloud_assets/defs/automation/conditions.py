"""Automation conditions shared by the assets."""
import dagster as dg

MODEL_FILE = dg.AssetKey("model_file")


class ModelNewerThanItsInput(dg.AutomationCondition):
    """True for an asset that reads the model file when the model file's last observed data version (its
    SHA-256) is not the one the asset's last materialization read (Dagster's data provenance). `eager()`
    alone misses such a model when its observation and the asset's materialization by an earlier run fall
    between the same two evaluations: the asset's own update then counts as having handled the new model
    (dagster-io/dagster#24650), and nothing would ever run again. False for an asset never materialized
    (`eager()`'s `newly_missing`) or that does not read the model file."""

    @property
    def name(self) -> str:
        return "model_newer_than_its_input"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        if MODEL_FILE not in context.asset_graph.get(context.key).parent_entity_keys:
            return dg.AutomationResult(context, context.get_empty_subset())  # no queries every 30 s for these
        instance = context.asset_graph_view.instance
        materialized = instance.get_latest_materialization_event(context.key)
        read = (materialized.tags or {}).get(f"dagster/input_data_version/{MODEL_FILE.to_user_string()}") \
            if materialized else None
        observed = instance.fetch_observations(MODEL_FILE, limit=1).records
        observation = observed[0].asset_observation if observed else None
        current = observation.tags.get("dagster/data_version") if observation else None
        newer = read is not None and current is not None and read != current
        return dg.AutomationResult(context, context.candidate_subset if newer else context.get_empty_subset())


# The model-dependent assets: materialize when an upstream asset changes (a new model file data
# version, or an upstream re-materialization), when their code version changes, or, where `eager()` misses
# it, when the model file they last read is no longer the observed one or an upstream asset is requested
# for that reason, and nothing of theirs is running, requested or failed. The data-only assets carry no
# condition: a new model never recomputes them.
_MISSED_MODEL = ((ModelNewerThanItsInput() | dg.AutomationCondition.any_deps_match(
                     dg.AutomationCondition.will_be_requested()))
                 & ~dg.AutomationCondition.in_progress()
                 & ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.newly_requested()
                 & ~dg.AutomationCondition.execution_failed()).with_label("a model it has not read")
FOLLOWS_MODEL = (dg.AutomationCondition.eager() | dg.AutomationCondition.code_version_changed()
                 | _MISSED_MODEL).with_label("follows the model file")
