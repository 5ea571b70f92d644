"""Automation conditions shared by the assets."""
import dagster as dg

# The model-dependent assets: materialize when an upstream asset changes (a new model file data
# version, or an upstream re-materialization) or when their code version changes. The data-only
# assets carry no condition: a new model never recomputes them.
FOLLOWS_MODEL = (dg.AutomationCondition.eager() | dg.AutomationCondition.code_version_changed()).with_label(
    "follows the model file")
