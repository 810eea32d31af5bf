"""Jobs of the quality area: the weekly model refit, the dashboard, one alert delivery pass."""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs.market_data.assets import WORKLOAD_TAG
from quant_pipelines.defs.quality.assets import (
    anomaly_dashboard,
    anomaly_thresholds,
    prophet_models,
)
from quant_pipelines.defs.resources import AlertTransportsResource, MongoResource
from quant_pipelines.services import quality as service

quality_models_job = dg.define_asset_job(
    name="quality_models_job",
    selection=dg.AssetSelection.assets(prophet_models, anomaly_thresholds),
    tags={WORKLOAD_TAG: "quality_training", "dagster/priority": "0"},
    description="Refit the Prophet models and recalibrate the anomaly thresholds.",
)

anomaly_dashboard_job = dg.define_asset_job(
    name="anomaly_dashboard_job",
    selection=dg.AssetSelection.assets(anomaly_dashboard),
    description="Recompute the anomaly dashboard and its KPIs now (it also runs on its cron).",
)


@dg.op(description="Deliver the due alerts of the outbox once (what the sensor does every tick).")
def deliver_alerts(
    context,  # OpExecutionContext; unannotated: Dagster rejects the PEP 563 string
    mongo: MongoResource,
    alert_transports: AlertTransportsResource,
) -> dg.Output[dict]:
    """Delivers due alerts to the configured webhook and Slack channels."""
    summary = service.deliver_alerts(mongo.repos(), alert_transports.by_channel())
    fields = {f: int(getattr(summary, f)) for f in ("claimed", "sent", "retried", "failed")}
    context.log.info(f"alert delivery: {fields}")
    return dg.Output(fields, metadata={k: dg.MetadataValue.int(v) for k, v in fields.items()})


@dg.job(description="Deliver due alerts now, outside the sensor's cadence.")
def alert_delivery_job() -> None:
    """One delivery pass over the outbox."""
    deliver_alerts()
