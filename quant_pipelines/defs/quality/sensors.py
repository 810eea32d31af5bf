"""The alert relay: delivers the outbox's due alerts every 30 seconds, on by default."""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs.resources import AlertTransportsResource, MongoResource
from quant_pipelines.services.quality import deliver_alerts


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Deliver due alerts from the outbox to the webhook and Slack, with retries.",
)
def alert_delivery_sensor(
    context: dg.SensorEvaluationContext,
    mongo: MongoResource,
    alert_transports: AlertTransportsResource,
) -> dg.SkipReason:
    """Delivers due alerts; a crash between record and send is recovered on the next tick."""
    summary = deliver_alerts(mongo.repos(), alert_transports.by_channel())
    return dg.SkipReason(
        f"claimed {summary.claimed}, sent {summary.sent}, retried {summary.retried}, "
        f"failed {summary.failed}"
    )
