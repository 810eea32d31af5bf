"""Evaluate the optimization run-status sensors against a real run of a test instance."""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs.optimization import sensors
from quant_pipelines.defs.resources import MongoResource

#: The run-status sensor of each run end, and the run event it reacts to.
SENSOR_OF = {
    dg.DagsterEventType.RUN_START: sensors.optimization_run_started_sensor,
    dg.DagsterEventType.RUN_SUCCESS: sensors.optimization_run_succeeded_sensor,
    dg.DagsterEventType.RUN_FAILURE: sensors.optimization_run_failed_sensor,
    dg.DagsterEventType.RUN_CANCELED: sensors.optimization_run_canceled_sensor,
}


def run_event(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterEvent:
    """The run's latest end event (success, failure or canceled)."""
    ends = [
        record
        for kind in (
            dg.DagsterEventType.RUN_SUCCESS,
            dg.DagsterEventType.RUN_FAILURE,
            dg.DagsterEventType.RUN_CANCELED,
        )
        for record in instance.get_records_for_run(run_id, of_type=kind).records
    ]
    assert ends, f"run {run_id} has not ended"
    return max(ends, key=lambda r: r.storage_id).event_log_entry.dagster_event


def evaluate_run_sensor(
    instance: dg.DagsterInstance,
    run_id: str,
    mongo: MongoResource,
    kind: dg.DagsterEventType | None = None,
) -> object:
    """Evaluates the run-status sensor of the run's end event (or of ``kind``, e.g. its start)."""
    if kind is None:
        event = run_event(instance, run_id)
    else:
        event = instance.get_records_for_run(run_id, of_type=kind).records[-1]
        event = event.event_log_entry.dagster_event
    sensor = SENSOR_OF[event.event_type]
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id),
        resources={"mongo": mongo},
    )
    if event.event_type == dg.DagsterEventType.RUN_FAILURE:
        context = context.for_run_failure()
    with context:  # the MongoDB resource is a context manager
        return sensor(context)
