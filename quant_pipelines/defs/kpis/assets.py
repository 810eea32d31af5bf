"""``kpi_report``: the plan's section-7 metrics from MongoDB, with their history in ``kpis``."""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the context parameter
# annotations of assets at definition time, and PEP 563 strings defeat it.

import dagster as dg

from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.services.kpis import kpi_report as compute_kpi_report

#: Asset keys the report reads from (through MongoDB).
_UPSTREAM = ["optimization_leaderboard", "rl_policy_replay", "anomaly_dashboard"]
#: 06:30 New York: after the night's studies, before the open.
KPI_CRON = "30 6 * * *"
KPI_TIMEZONE = "America/New_York"
#: Daily at KPI_CRON whether or not its upstreams changed: ``on_cron`` would also wait for
#: every upstream to update since the tick, and RL replays run weekly, so it would skip days.
KPI_AUTOMATION = (
    dg.AutomationCondition.cron_tick_passed(KPI_CRON, KPI_TIMEZONE)
    & ~dg.AutomationCondition.in_progress()
)


@dg.asset(
    deps=[dg.AssetKey(k) for k in _UPSTREAM],
    group_name="kpis",
    kinds={"mongodb"},
    owners=["team:quant-research"],
    automation_condition=KPI_AUTOMATION,
)
def kpi_report(context: dg.AssetExecutionContext, mongo: MongoResource) -> dg.MaterializeResult:
    """The plan's section-7 KPIs, recorded daily in `kpis` and plotted across materializations."""
    report = compute_kpi_report(mongo.repos())
    metadata: dict[str, dg.MetadataValue] = {
        k: dg.MetadataValue.float(float(v)) for k, v in report.metrics.items() if v is not None
    }
    metadata["report"] = dg.MetadataValue.md(report.markdown())
    metadata["periods_recorded"] = dg.MetadataValue.int(report.periods_recorded)
    context.log.info(f"KPIs of {report.period} recorded")
    return dg.MaterializeResult(metadata=metadata)
