"""When things run: the model file is observed on a schedule and the model-dependent assets follow
its data version by themselves (automation conditions); a cursor-based sensor is the alternative
where no automation daemon runs; the report is rebuilt nightly; jobs for the UI: one per group, every
asset but the fold audit's, and the fold audit."""
import dagster as dg

from cloud_assets.defs.resources import ModelResource
from cloud_assets.lib.classifier import model_watch
from cloud_assets.settings import Settings

MODEL_DEPENDENT = (dg.AssetSelection.assets("model_file").downstream(include_self=False))
DATA = dg.AssetSelection.groups("data")
# the fold models and what they give each label; label_issues, in the audit group too, reads the classifier's
FOLD_AUDIT = dg.AssetSelection.groups("audit") - dg.AssetSelection.assets("label_issues")


def _observation_job(name: str, assets: tuple[str, ...], description: str):
    """A job observing `assets`, in the run's own process (a hash of a file or two each): no fork
    server to start."""
    return dg.define_asset_job(name, selection=dg.AssetSelection.assets(*assets), description=description,
                               executor_def=dg.in_process_executor)


observe_model_file = _observation_job("observe_model_file", ("model_file",),
                                      "Observe the model file: its data version is its SHA-256.")
observe_label_review = _observation_job("observe_label_review", ("label_review",),
                                        "Observe the reviewer's label_review.csv: its data version is its SHA-256.")
observe_sources = _observation_job(
    "observe_sources", ("raw_data", "model_file", "label_review"),
    "Observe the dataset folder, the model file and label_review.csv: what reads one whose data version changed "
    "is stale (make run materializes what is stale or missing).")
data_job = dg.define_asset_job("data_job", selection=DATA, description="Labels, split, image cache, masks, dark images.")
model_audit_job = dg.define_asset_job("model_audit_job", selection=MODEL_DEPENDENT - dg.AssetSelection.groups("report"),
                                      description="Predictions, saliency and the analysis of the mistakes.")
report_job = dg.define_asset_job("report_job", selection=dg.AssetSelection.groups("report"),
                                 description="Rebuild the report site from the last materializations.")
classifier_job = dg.define_asset_job("classifier_job", selection=dg.AssetSelection.all() - FOLD_AUDIT,
                                     description="Every asset but the fold audit's: from the labels and images "
                                                 "through the classifier's mistakes, every label ranked (from the "
                                                 "fold audit's last materialization) to the report.")
fold_audit_job = dg.define_asset_job("fold_audit_job", selection=FOLD_AUDIT,
                                     description="The audit of every label: folds, a model per fold (one partition "
                                                 "each), every image's out-of-sample predictions, each label's evidence.")



def _observation_schedule(name: str, job, what: str, follows: str, cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=name, job=job, cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Observe {what} (CLOUD_ASSETS_MODEL_CHECK_CRON, default every 5 minutes); a new SHA-256 makes "
                    f"{follows} re-materialize through their automation conditions.")


nightly_report = dg.ScheduleDefinition(name="nightly_report", job=report_job, cron_schedule="0 3 * * *",
                                       description="Rebuild the report site every night at 03:00.")


model_automation = dg.AutomationConditionSensorDefinition(
    "model_automation", target=MODEL_DEPENDENT, default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30, use_user_code_server=True,
    description="Evaluates the model-dependent assets' automation conditions (running by default), in the code "
                "server: one of them is this project's Python (`conditions.ModelNewerThanItsInput`).")


@dg.sensor(job=model_audit_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="For deployments without the automation daemon: re-run the model audit when the "
                       "model file's SHA-256 differs from the cursor.")
def model_file_sensor(context: dg.SensorEvaluationContext, model: ModelResource):
    changed, cursor = model_watch.changed(model.path, context.cursor)
    if not changed:
        return dg.SkipReason(f"{model.path}: unchanged" if cursor else f"{model.path}: no model file")
    context.update_cursor(cursor)
    return dg.RunRequest(run_key=cursor, tags={"cloud_assets/model_sha256": cursor})


def build(settings: Settings) -> dg.Definitions:
    """The jobs, the schedules (the observations' at CLOUD_ASSETS_MODEL_CHECK_CRON) and the sensors."""
    cron = settings.model_check_cron
    schedules = [_observation_schedule("model_file_schedule", observe_model_file, "the model file",
                                       "the model-dependent assets", cron),
                 _observation_schedule("label_review_schedule", observe_label_review, "label_review.csv",
                                       "corrected_labels and the report", cron),
                 nightly_report]
    return dg.Definitions(jobs=[observe_sources, observe_model_file, observe_label_review, data_job, model_audit_job,
                                report_job, classifier_job, fold_audit_job],
                          schedules=schedules, sensors=[model_automation, model_file_sensor])
