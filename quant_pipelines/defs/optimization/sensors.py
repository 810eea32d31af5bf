"""The request lifecycle, owned by Dagster (transitions in :mod:`quant_pipelines.storage.requests`).

* ``optimization_request_sensor``: ``queued``/``deferred`` → ``launched`` (one keyed run per
  request; the run id is recorded once the run exists), or ``deferred`` during market hours.
* ``optimization_run_*_sensor`` (run-status sensors on ``optimize_strategy_job``): the run
  started → ``running``; it ended → ``succeeded``, ``failed`` (with the error) or
  ``canceled``, stamped with the run id; a run that stopped at its wall-clock limit
  (``stopped_at_wall_limit`` metadata) → ``deferred``, and the request sensor resumes it.

Every sensor runs by default; none depends on the study's code having run to the end, so a
run killed mid-study still ends its request ``failed``.
"""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the context and
# resource parameter annotations of sensors at definition time.

import dagster as dg
import pandas as pd

from quant_pipelines.defs.optimization.jobs import optimize_strategy_job
from quant_pipelines.defs.optimization.planning import plan_request_runs
from quant_pipelines.defs.optimization.tags import REQUEST_RUN_KEY_TAG, REQUEST_TAG
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.storage import requests
from quant_pipelines.storage._request_resume import requeue_unfinished

#: Dagster's run tags: a failed run it will re-execute (``run_retries`` in dagster.yaml), and
#: the run a re-execution retries.
WILL_RETRY_TAG = "dagster/will_retry"
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
#: How often the run-status sensors look for new run events (seconds).
RUN_STATUS_INTERVAL_S = 10


@dg.sensor(
    name="optimization_request_sensor",
    job=optimize_strategy_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch one study run per pending POST /backtests/optimize request.",
)
def optimization_request_sensor(
    context: dg.SensorEvaluationContext, mongo: MongoResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """One run per request (keyed by request id); market-hours requests wait unless urgent."""

    def find_run(run_key: str) -> str | None:
        # A first run is found by its request tag (runs older than the run-key tag have only
        # that one); a resuming run by its run-key tag.
        tag = REQUEST_RUN_KEY_TAG if ":resume-" in run_key else REQUEST_TAG
        found = context.instance.get_run_records(dg.RunsFilter(tags={tag: run_key}), limit=1)
        return found[0].dagster_run.run_id if found else None

    db, now = mongo.get_db(), pd.Timestamp.now(tz="UTC")
    planned = plan_request_runs(db, now=now, find_run=find_run, log=context.log.info)
    return planned or dg.SkipReason("no pending optimization requests")


def stopped_at_wall_limit(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether the run's study materialization says it stopped at its wall-clock limit."""
    events = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in events:
        materialization = record.event_log_entry.asset_materialization
        flag = materialization.metadata.get("stopped_at_wall_limit") if materialization else None
        if flag is not None and flag.value:
            return True
    return False


def record_run_event(
    context: dg.RunStatusSensorContext, mongo: MongoResource, status: str, *, error: str = ""
) -> dg.SkipReason | None:
    """Moves the request a run serves to ``status`` (or back to ``deferred`` when a run that
    succeeded stopped at its wall-clock limit); late or repeated events change nothing, and a
    failed run that Dagster will retry leaves its request to the retry."""
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
    request_id = run.tags.get(REQUEST_TAG)
    if not request_id:
        return dg.SkipReason(f"run {run.run_id} serves no request")
    if status == requests.FAILED and run.tags.get(WILL_RETRY_TAG) == "true":
        return dg.SkipReason(f"run {run.run_id} failed and will be retried")
    run_key, db = run.tags.get(REQUEST_RUN_KEY_TAG, request_id), mongo.get_db()
    retry_of = run.tags.get(PARENT_RUN_ID_TAG)
    if status == requests.SUCCEEDED and stopped_at_wall_limit(context.instance, run.run_id):
        try:
            doc = requeue_unfinished(
                db,
                request_id,
                run.run_id,
                run_key=run_key,
                retry_of=retry_of,
                reason="wall-clock limit reached",
            )
        except requests.InvalidRequestTransitionError:
            doc = None
    else:
        doc = requests.record_run_status(
            db, request_id, run_key, run.run_id, status, error=error or None, retry_of=retry_of
        )
    if doc is None:
        return dg.SkipReason(f"request {request_id} no longer holds run {run.run_id}")
    context.log.info(f"request {request_id}: {doc['status']} (run {run.run_id})")
    return None


def _failure_message(context: dg.RunFailureSensorContext) -> str:
    steps = [e.step_failure_data.error for e in context.get_step_failure_events()]
    messages = [e.message.strip() for e in steps if e is not None]
    return "; ".join(messages) or context.failure_event.message or "the run failed"


_SENSOR_OPTIONS = {
    "monitored_jobs": [optimize_strategy_job],
    "minimum_interval_seconds": RUN_STATUS_INTERVAL_S,
    "default_status": dg.DefaultSensorStatus.RUNNING,
}


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    name="optimization_run_started_sensor",
    description="A request's study run started: the request is running.",
    **_SENSOR_OPTIONS,
)
def optimization_run_started_sensor(context: dg.RunStatusSensorContext, mongo: MongoResource):
    """launched → running, with the run id."""
    return record_run_event(context, mongo, requests.RUNNING)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="optimization_run_succeeded_sensor",
    description="A request's study run succeeded: the request succeeded, or is deferred "
    "for a resume when the run stopped at its wall-clock limit.",
    **_SENSOR_OPTIONS,
)
def optimization_run_succeeded_sensor(context: dg.RunStatusSensorContext, mongo: MongoResource):
    """launched|running → succeeded (or deferred after the wall-clock limit)."""
    return record_run_event(context, mongo, requests.SUCCEEDED)


@dg.run_failure_sensor(
    name="optimization_run_failed_sensor",
    description="A request's study run failed (or its process died): the request failed.",
    **_SENSOR_OPTIONS,
)
def optimization_run_failed_sensor(context: dg.RunFailureSensorContext, mongo: MongoResource):
    """launched|running → failed, with the run id and the error."""
    return record_run_event(context, mongo, requests.FAILED, error=_failure_message(context))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="optimization_run_canceled_sensor",
    description="A request's study run was canceled: the request is canceled.",
    **_SENSOR_OPTIONS,
)
def optimization_run_canceled_sensor(context: dg.RunStatusSensorContext, mongo: MongoResource):
    """launched|running → canceled, with the run id."""
    return record_run_event(context, mongo, requests.CANCELED)
