"""The ``kpis`` collection: one document per (kpi, period), upserted, with history kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from quant_pipelines.storage.collections import KPIS


def upsert_kpi(
    db: Database,
    kpi: str,
    period: str,
    value: float | None,
    *,
    details: Mapping[str, Any] | None = None,
    source: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Records the value of ``kpi`` for ``period`` (re-running a period overwrites it).

    Args:
        db: The project database.
        kpi: Metric name, e.g. ``rl.policy_sharpe`` or ``quality.false_positive_rate``.
        period: The period the value describes, e.g. ``2026-11-23`` or ``2026-W47``.
        value: The figure (None when it cannot be computed yet).
        details: Breakdowns and inputs kept next to the value.
        source: What computed it (asset key, run id ...).
        now: Computation time (default: the clock).
    """
    now = now or dt.datetime.now(dt.UTC)
    db[KPIS].update_one(
        {"kpi": kpi, "period": period},
        {
            "$set": {
                "value": None if value is None else float(value),
                "details": dict(details or {}),
                "source": source,
                "computed_at": now,
            },
            "$setOnInsert": {"created_at": now},
        },
        upsert=True,
    )


def kpi_history(db: Database, kpi: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest values of ``kpi``, newest period first."""
    cursor = db[KPIS].find({"kpi": kpi}, {"_id": 0}).sort("period", DESCENDING).limit(limit)
    return list(cursor)


def section7_metrics(db: Database) -> dict[str, float | None]:
    """The plan's section-7 metrics, computed from what the pipelines stored.

    Returns:
        ``trials_per_hour`` (median over studies), ``best_sharpe_improvement`` (on the
        holdout: the best promoted trial's holdout Sharpe minus its study's baseline
        parameters' holdout Sharpe; None when no trial is promoted),
        ``best_sharpe_improvement_in_sample`` (labelled in sample: best minus baseline
        objective, best study; the number overfitting inflates most), ``promoted_strategies``,
        ``policy_sharpe`` and ``drawdown_compliance`` (latest
        replay per symbol: mean Sharpe, share compliant), ``episode_length_mean`` and
        ``episode_length_cv`` (std / mean), ``anomalies_per_batch``,
        ``time_to_resolution_s`` (mean) and ``false_positive_rate``. None where no data exists.
    """
    from statistics import median

    from quant_pipelines.storage.anomaly_workflow import false_positive_rate, time_to_resolution
    from quant_pipelines.storage.studies import promoted_trials

    studies = list(db["studies"].find({}, {"progress": 1, "best": 1, "baseline": 1}))
    rates = [
        s["progress"]["trials_per_hour"]
        for s in studies
        if (s.get("progress") or {}).get("trials_per_hour")
    ]
    gains = [
        s["best"]["value"] - s["baseline"]["values"][0]
        for s in studies
        if (s.get("best") or {}).get("value") is not None
        and (s.get("baseline") or {}).get("values")
    ]
    holdout_gains = [
        p["holdout_sharpe"] - p["baseline_holdout_sharpe"]
        for p in promoted_trials(db)
        if p["holdout_sharpe"] is not None and p["baseline_holdout_sharpe"] is not None
    ]
    latest: dict[str, dict] = {}
    for doc in db["rl_policies"].find({"replay": {"$exists": True}}).sort("created_at", DESCENDING):
        latest.setdefault(doc.get("symbol", doc["policy_id"]), doc["replay"])
    replays = list(latest.values())
    ep_mean = [r["episode_length_mean"] for r in replays if r.get("episode_length_mean")]
    ep_std = [r["episode_length_std"] for r in replays if r.get("episode_length_mean")]
    batches = [
        b["anomalies_by_severity"]
        for b in db["ingest_batches"].find({"anomalies_by_severity": {"$exists": True}})
    ]
    ttr = time_to_resolution(db)
    fpr = false_positive_rate(db)
    mean_len = sum(ep_mean) / len(ep_mean) if ep_mean else None
    return {
        "trials_per_hour": median(rates) if rates else None,
        "best_sharpe_improvement": max(holdout_gains) if holdout_gains else None,
        "best_sharpe_improvement_in_sample": max(gains) if gains else None,
        "promoted_strategies": float(len(holdout_gains)),
        "policy_sharpe": sum(r["sharpe"] for r in replays) / len(replays) if replays else None,
        "drawdown_compliance": (
            sum(bool(r.get("drawdown_compliant")) for r in replays) / len(replays)
            if replays
            else None
        ),
        "episode_length_mean": mean_len,
        "episode_length_cv": (sum(ep_std) / len(ep_std)) / mean_len if mean_len else None,
        "anomalies_per_batch": (
            sum(b.get("warning", 0) + b.get("critical", 0) for b in batches) / len(batches)
            if batches
            else None
        ),
        "time_to_resolution_s": ttr.mean_s,
        "false_positive_rate": fpr.rate if fpr.reviewed else None,
    }
