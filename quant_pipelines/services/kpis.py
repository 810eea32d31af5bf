"""The KPI report as a use case: the plan's section-7 metrics, recorded per period in ``kpis``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from quant_pipelines._utils.time import utc, utc_now
from quant_pipelines.storage.kpis import kpi_history, section7_metrics, upsert_kpi
from quant_pipelines.storage.repositories import Repositories

#: Human labels of the section-7 KPIs, in report order.
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
#: Prefix of the KPI names the report records (``report.<metric>``).
PREFIX = "report."


@dataclass(frozen=True)
class KpiReport:
    """One period's KPIs.

    Attributes:
        period: The period recorded (``YYYY-MM-DD``).
        metrics: Each section-7 metric; None where no data exists yet.
        periods_recorded: How many periods the longest KPI history holds.
    """

    period: str
    metrics: dict[str, float | None]
    periods_recorded: int

    def markdown(self) -> str:
        """The report as a Markdown table of labelled values."""
        rows = [f"| {LABELS[k]} | {_shown(k, v)} |" for k, v in self.metrics.items()]
        return "\n".join(["| KPI | value |", "|---|---|", *rows])


def kpi_report(repos: Repositories, *, now: dt.datetime | None = None) -> KpiReport:
    """Computes the section-7 metrics and upserts them as ``report.<metric>`` for today.

    Re-running on the same day overwrites that day's values (one document per KPI and period).

    Args:
        repos: The project's repositories.
        now: The clock (default: now); its UTC date is the period.

    Returns:
        The period's report.
    """
    period = (utc(now) if now else utc_now()).date().isoformat()
    metrics = section7_metrics(repos.db)
    for name, value in metrics.items():
        upsert_kpi(repos.db, PREFIX + name, period, value, source="kpi_report")
    history = [len(kpi_history(repos.db, PREFIX + name)) for name in metrics]
    return KpiReport(period, metrics, max(history, default=0))


def _shown(name: str, value: float | None) -> str:
    if value is None:
        return "none promoted" if name == "best_sharpe_improvement" else "n/a"
    return f"{value:,.4g}"
