"""Checks of ``bar_anomaly_scores/<class>``, evaluated from the scoring report of the batch.

They are alert signals, not gates: nothing downstream is stopped by them, so they are not
blocking; their severities are explicit (the rate warns, a critical bar is an error).
"""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs.quality._metadata import anomaly_table
from quant_pipelines.services.quality import ScoringReport

ANOMALY_RATE_CHECK = "anomaly_rate_within_threshold"
NO_CRITICAL_CHECK = "no_critical_anomalies"


def scores_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The check specs of one scores asset."""
    return [
        dg.AssetCheckSpec(
            ANOMALY_RATE_CHECK,
            asset=key,
            description="Share of bars at warning or above stays under the calibrated rate.",
        ),
        dg.AssetCheckSpec(
            NO_CRITICAL_CHECK, asset=key, description="No bar of the batch is scored critical."
        ),
    ]


def anomaly_rate_within_threshold(key: dg.AssetKey, report: ScoringReport) -> dg.AssetCheckResult:
    """The batch's share of warning-or-above bars is at most the acceptable rate."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ANOMALY_RATE_CHECK,
        passed=report.rate <= report.max_rate,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "anomaly_rate": dg.MetadataValue.float(round(report.rate, 6)),
            "threshold_rate": dg.MetadataValue.float(report.max_rate),
            "flagged_bars": dg.MetadataValue.int(report.flagged),
        },
    )


def no_critical_anomalies(key: dg.AssetKey, report: ScoringReport) -> dg.AssetCheckResult:
    """No bar of the batch is critical (each critical bar is alerted)."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=NO_CRITICAL_CHECK,
        passed=report.counts.get("critical", 0) == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "critical_bars": dg.MetadataValue.int(report.counts.get("critical", 0)),
            "threshold_critical": dg.MetadataValue.int(0),
            "critical": anomaly_table(report.critical[:50]),
        },
    )
