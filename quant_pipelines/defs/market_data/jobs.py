"""The daily ingestion of each asset class: a job (ingest, check, score) and its schedule."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from quant_pipelines.defs.market_data.assets import WORKLOAD_TAG, market_bars_key
from quant_pipelines.services.market_data import today_partition


def build_ingest_job(asset_class: str) -> dg.UnresolvedAssetJobDefinition:
    """The daily flow of one asset class: ingest and check its bars, then score them.

    The sentinel's ``bar_anomaly_scores/<class>`` (same partitions) runs only when the blocking
    checks of the bars pass.
    """
    return dg.define_asset_job(
        name=f"ingest_{asset_class}_bars_job",
        selection=dg.AssetSelection.assets(
            market_bars_key(asset_class), dg.AssetKey(["bar_anomaly_scores", asset_class])
        ),
        tags={WORKLOAD_TAG: "ingestion", "dagster/priority": "10"},
        description=f"Ingest, check and score the {asset_class} bars of the selected trading days.",
    )


def build_daily_ingestion_schedule(
    asset_class: str, job: dg.UnresolvedAssetJobDefinition
) -> dg.ScheduleDefinition:
    """After the New York close, ingest the day's session of ``asset_class`` if it traded."""

    @dg.schedule(
        name=f"daily_{asset_class}_ingestion_schedule",
        cron_schedule="30 20 * * *",
        execution_timezone="America/New_York",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Ingest the day's {asset_class} bars at 20:30 New York, after the NYSE close; "
            "days without a session are skipped."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        now = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        key = today_partition(asset_class, now)
        if key is None:
            return dg.SkipReason(f"no {asset_class} session closed on {now.date()}")
        return dg.RunRequest(run_key=f"{asset_class}:{key}", partition_key=key)

    return _schedule


ingest_equity_bars_job = build_ingest_job("equity")
ingest_fx_bars_job = build_ingest_job("fx")
ingest_crypto_bars_job = build_ingest_job("crypto")

daily_equity_ingestion_schedule = build_daily_ingestion_schedule("equity", ingest_equity_bars_job)
daily_fx_ingestion_schedule = build_daily_ingestion_schedule("fx", ingest_fx_bars_job)
daily_crypto_ingestion_schedule = build_daily_ingestion_schedule("crypto", ingest_crypto_bars_job)
