"""Metadata of the quality area: the services' reports as Dagster metadata values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from quant_pipelines.quality.severity import SEVERITIES
from quant_pipelines.services.calibration import ThresholdsUpdate
from quant_pipelines.services.quality import DashboardReport, ScoringReport
from quant_pipelines.storage.anomaly_workflow import ANOMALY_STATUSES

_COLUMNS = ("symbol", "ts", "detector", "rule", "severity", "score", "status")


def anomaly_table(rows: Iterable[Mapping[str, Any]]) -> dg.TableMetadataValue:
    """Anomaly documents as a table (score rounded to 4 places, other fields as text)."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    c: (round(float(r.get(c) or 0.0), 4) if c == "score" else str(r.get(c, "")))
                    for c in _COLUMNS
                }
            )
            for r in rows
        ],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(c, "float" if c == "score" else "string") for c in _COLUMNS]
        ),
    )


def scores_metadata(report: ScoringReport) -> dict[str, dg.MetadataValue]:
    """Materialization metadata of ``bar_anomaly_scores/<class>``."""
    return {
        "bars_scored": dg.MetadataValue.int(report.total),
        **{level: dg.MetadataValue.int(report.counts.get(level, 0)) for level in SEVERITIES},
        "alerts_enqueued": dg.MetadataValue.int(report.alerts_enqueued),
        "thresholds_version": dg.MetadataValue.text(report.thresholds_version),
        "batch_id": dg.MetadataValue.text(report.batch_id),
        "symbols_without_history": dg.MetadataValue.json(report.unscored),
        "latest_anomalies": anomaly_table(report.latest),
    }


def thresholds_metadata(update: ThresholdsUpdate) -> dict[str, dg.MetadataValue]:
    """Materialization metadata of ``anomaly_thresholds``."""
    report = update.report
    return {
        "version": dg.MetadataValue.text(update.version),
        "clean_bars": dg.MetadataValue.int(int(report.thresholds.n_bars)),
        "thresholds": dg.MetadataValue.json(report.thresholds.to_dict()),
        "false_positives_excluded": dg.MetadataValue.json(report.excluded),
        "confirmed_left_out": dg.MetadataValue.json(report.confirmed),
        "skipped": dg.MetadataValue.json(report.skipped),
    }


def dashboard_metadata(report: DashboardReport) -> dict[str, dg.MetadataValue]:
    """Materialization metadata of ``anomaly_dashboard`` (counts, rates, latest anomalies)."""
    severity, status = report.by_severity, report.by_status
    ttr, fpr = report.time_to_resolution_mean_s, report.false_positive_rate
    return {
        **{f"anomalies_{s}": dg.MetadataValue.int(severity.get(s, 0)) for s in SEVERITIES},
        **{s: dg.MetadataValue.int(status.get(s, 0)) for s in ANOMALY_STATUSES},
        "anomalies_per_batch": dg.MetadataValue.float(round(report.anomalies_per_batch, 3)),
        "time_to_resolution_mean_s": dg.MetadataValue.float(float(ttr or 0.0)),
        "false_positive_rate": dg.MetadataValue.float(float(fpr or 0.0)),
        "by_symbol": dg.MetadataValue.json(report.by_symbol),
        "latest_anomalies": anomaly_table(report.latest),
    }
