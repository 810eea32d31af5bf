"""The weekly refit of the sentinel's models, outside market hours.

A schedule rather than an ``on_cron`` automation condition: the refit is the area's heaviest
run (a Prophet fit per symbol, then a walk-forward replay), so it runs as ``quality_models_job``
with its workload tag (the run queue's tag concurrency limits) and lowest priority, and it is
stopped by default: operators switch it on in the runbook once the history is loaded.
"""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs.quality.jobs import quality_models_job


@dg.schedule(
    name="weekly_quality_models_schedule",
    cron_schedule="0 8 * * 0",
    execution_timezone="America/New_York",
    job=quality_models_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Sunday 08:00 New York: refit Prophet, recalibrate thresholds.",
)
def weekly_quality_models_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Weekly refit and recalibration, outside market hours."""
    return dg.RunRequest()
