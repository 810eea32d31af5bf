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


def latest_kpis(db: Database, prefix: str = "") -> dict[str, dict[str, Any]]:
    """The newest document of every KPI whose name starts with ``prefix``."""
    out: dict[str, dict[str, Any]] = {}
    query = {"kpi": {"$regex": f"^{prefix}"}} if prefix else {}
    for doc in db[KPIS].find(query, {"_id": 0}).sort("period", DESCENDING):
        out.setdefault(doc["kpi"], doc)
    return out
