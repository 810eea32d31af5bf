"""The nightly study windows, outside market hours: equities and FX after the New York close,
crypto in the small hours. (The leaderboard needs no schedule: it runs after new studies.)"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from quant_pipelines.backtest import list_strategies
from quant_pipelines.defs.optimization.jobs import optimize_strategy_job
from quant_pipelines.defs.optimization.tags import run_tags


def _partition_requests(asset_classes: tuple[str, ...], day: str) -> list[dg.RunRequest]:
    return [
        dg.RunRequest(
            run_key=f"nightly:{strategy}:{asset_class}:{day}",
            partition_key=dg.MultiPartitionKey({"strategy": strategy, "asset_class": asset_class}),
            tags=run_tags(asset_class),
        )
        for asset_class in asset_classes
        for strategy in list_strategies()
    ]


@dg.schedule(
    name="nightly_optimization_schedule",
    cron_schedule="0 21 * * 1-5",
    execution_timezone="America/New_York",
    job=optimize_strategy_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Equity and FX studies at 21:00 New York on weekdays, after the close.",
)
def nightly_optimization_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Launches one study per (strategy, equity|fx) outside the NYSE session."""
    when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    return _partition_requests(("equity", "fx"), when.date().isoformat())


@dg.schedule(
    name="crypto_optimization_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone="America/New_York",
    job=optimize_strategy_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Crypto studies at 02:00 New York every day: their own window, off-session.",
)
def crypto_optimization_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Launches one study per (strategy, crypto) in the small hours, New York time."""
    when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    return _partition_requests(("crypto",), when.date().isoformat())
