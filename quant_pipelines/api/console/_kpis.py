"""The console's KPI strip: the section-7 data-quality KPIs over the last 30 days, by day.

* anomalies per batch: bars at warning or above per scored ingestion batch (``ingest_batches``,
  by ``scored_at``), as ``storage.quality.flagged_per_batch`` counts them;
* time to resolution: ``time_to_resolution_s`` of anomalies resolved in the window (by
  ``closed_at``), as ``storage.anomaly_workflow.time_to_resolution`` measures it;
* false-positive rate: false positives among anomalies closed in the window.

The window follows when things happened (scoring, closing), not the bars' dates, so a
backfill of old bars still shows up in this month's workload. Two queries in all.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from pymongo.database import Database

from quant_pipelines._utils.time import utc
from quant_pipelines.storage.anomaly_workflow import FALSE_POSITIVE, RESOLVED
from quant_pipelines.storage.collections import ANOMALIES, INGEST_BATCHES

#: Days covered by the strip.
DAYS = 30


@dataclass(frozen=True)
class KpiStrip:
    """The three KPIs over the window and their daily series (oldest day first).

    Attributes:
        days: The window's days.
        anomalies_per_batch: Mean flagged bars per scored batch (None: no batch scored).
        batches: Batches scored in the window.
        ttr_median_s: Median time to resolution, seconds (None: nothing resolved).
        resolved: Anomalies resolved in the window.
        fp_rate: False positives / closed (None: nothing closed).
        closed: Anomalies closed (resolved or false positive) in the window.
        daily_per_batch: Per day: mean flagged bars per batch scored that day.
        daily_ttr_h: Per day: median hours to resolution of anomalies resolved that day.
        daily_fp_rate: Per day: false-positive rate of anomalies closed that day.
    """

    days: list[dt.date]
    anomalies_per_batch: float | None
    batches: int
    ttr_median_s: float | None
    resolved: int
    fp_rate: float | None
    closed: int
    daily_per_batch: list[float | None]
    daily_ttr_h: list[float | None]
    daily_fp_rate: list[float | None]


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def kpi_strip(db: Database, *, now: dt.datetime, days: int = DAYS) -> KpiStrip:
    """Computes the strip for the ``days`` days up to ``now`` (today included).

    Args:
        db: The project database.
        now: The clock (UTC).
        days: Length of the window.

    Returns:
        The KPIs and their daily series.
    """
    today = utc(now).date()
    window = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    since = dt.datetime.combine(window[0], dt.time(), tzinfo=dt.UTC)
    index = {d: i for i, d in enumerate(window)}
    per_batch: list[list[float]] = [[] for _ in window]
    batches = db[INGEST_BATCHES].find(
        {"scored_at": {"$gte": since}, "anomalies_by_severity": {"$exists": True}},
        {"_id": 0, "scored_at": 1, "anomalies_by_severity": 1},
    )
    for batch in batches:
        i = index.get(utc(batch["scored_at"]).date())
        if i is not None:
            counts = batch["anomalies_by_severity"] or {}
            per_batch[i].append(float(counts.get("warning", 0)) + float(counts.get("critical", 0)))
    ttr: list[list[float]] = [[] for _ in window]
    closed: list[list[bool]] = [[] for _ in window]
    docs = db[ANOMALIES].find(
        {"status": {"$in": [RESOLVED, FALSE_POSITIVE]}, "closed_at": {"$gte": since}},
        {"_id": 0, "status": 1, "closed_at": 1, "time_to_resolution_s": 1},
    )
    for doc in docs:
        i = index.get(utc(doc["closed_at"]).date())
        if i is None:
            continue
        closed[i].append(doc["status"] == FALSE_POSITIVE)
        seconds = doc.get("time_to_resolution_s")
        if doc["status"] == RESOLVED and isinstance(seconds, int | float):
            ttr[i].append(float(seconds))
    all_batches = [v for day in per_batch for v in day]
    all_ttr = [v for day in ttr for v in day]
    all_closed = [v for day in closed for v in day]
    return KpiStrip(
        days=window,
        anomalies_per_batch=_mean(all_batches),
        batches=len(all_batches),
        ttr_median_s=_median(all_ttr),
        resolved=len(all_ttr),
        fp_rate=sum(all_closed) / len(all_closed) if all_closed else None,
        closed=len(all_closed),
        daily_per_batch=[_mean(day) for day in per_batch],
        daily_ttr_h=[None if (m := _median(day)) is None else m / 3600 for day in ttr],
        daily_fp_rate=[sum(day) / len(day) if day else None for day in closed],
    )
