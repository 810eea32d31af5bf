"""The KPI report: the plan's section-7 metrics from MongoDB, with their history in ``kpis``."""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the context parameter
# annotations of assets at definition time, and PEP 563 strings defeat it.

import datetime as dt

import dagster as dg

from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.storage.kpis import kpi_history, section7_metrics, upsert_kpi

#: Asset keys the report reads from (through MongoDB).
_UPSTREAM = ["optimization_leaderboard", "rl_policy_replay", "anomaly_dashboard"]

LABELS = {
    "trials_per_hour": "optimizer trials per hour (median over studies)",
    "best_sharpe_improvement": "best Sharpe improvement over baseline (holdout, promoted only)",
    "best_sharpe_improvement_in_sample": "best improvement over baseline (IN SAMPLE, inflated)",
    "promoted_strategies": "strategies promoted by the overfitting gate",
    "policy_sharpe": "RL policy Sharpe (held-out replay)",
    "drawdown_compliance": "RL drawdown compliance (share of policies)",
    "episode_length_mean": "RL episode length (mean)",
    "episode_length_cv": "RL episode-length stability (std / mean)",
    "anomalies_per_batch": "anomalies per ingestion batch",
    "time_to_resolution_s": "alert time to resolution (s, mean)",
    "false_positive_rate": "alert false-positive rate",
}


@dg.asset(
    deps=[dg.AssetKey(k) for k in _UPSTREAM],
    group_name="kpis",
    kinds={"mongodb"},
    owners=["team:quant-research"],
)
def kpi_report(context: dg.AssetExecutionContext, mongo: MongoResource) -> dg.MaterializeResult:
    """The plan's section-7 KPIs, recorded daily in `kpis` and plotted across materializations."""
    db = mongo.get_db()
    metrics = section7_metrics(db)
    period = dt.datetime.now(dt.UTC).date().isoformat()
    for name, value in metrics.items():
        upsert_kpi(db, f"report.{name}", period, value, source="kpi_report")
    history = {name: len(kpi_history(db, f"report.{name}")) for name in metrics}
    table = "\n".join(
        ["| KPI | value |", "|---|---|"]
        + [f"| {LABELS[k]} | {_shown(k, v)} |" for k, v in metrics.items()]
    )
    metadata: dict[str, dg.MetadataValue] = {
        k: dg.MetadataValue.float(float(v)) for k, v in metrics.items() if v is not None
    }
    metadata["report"] = dg.MetadataValue.md(table)
    metadata["periods_recorded"] = dg.MetadataValue.int(max(history.values(), default=0))
    return dg.MaterializeResult(metadata=metadata)


def _shown(name: str, value: float | None) -> str:
    if value is None:
        return "none promoted" if name == "best_sharpe_improvement" else "n/a"
    return f"{value:,.4g}"


kpi_report_job = dg.define_asset_job(
    name="kpi_report_job",
    selection=dg.AssetSelection.assets(kpi_report),
    description="Recompute the KPI report.",
)


@dg.schedule(
    name="daily_kpi_report_schedule",
    cron_schedule="30 6 * * *",
    execution_timezone="America/New_York",
    job=kpi_report_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="06:30 New York, after the night's studies and before the open.",
)
def daily_kpi_report_schedule(context: dg.ScheduleEvaluationContext):
    """The daily KPI report."""
    return dg.RunRequest()


def build_defs() -> dg.Definitions:
    """Definitions of the KPI area."""
    return dg.Definitions(
        assets=[kpi_report], jobs=[kpi_report_job], schedules=[daily_kpi_report_schedule]
    )
