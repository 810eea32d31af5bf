"""Sentinel storage: scores beside the bars, anomaly rows, Prophet models and thresholds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from pymongo import DESCENDING, UpdateOne
from pymongo.database import Database

from quant_pipelines._utils.time import utc
from quant_pipelines.storage.anomaly_workflow import FALSE_POSITIVE, RESOLVED
from quant_pipelines.storage.collections import ANOMALIES, BARS, INGEST_BATCHES

#: Fitted Prophet models, one document per (symbol, version).
QUALITY_MODELS = "quality_models"
#: Calibrated thresholds, one document per version.
QUALITY_THRESHOLDS = "quality_thresholds"


def ensure_quality_indexes(db: Database) -> None:
    """Unique keys of the sentinel's own collections (idempotent)."""
    db[QUALITY_MODELS].create_index(
        [("symbol", 1), ("version", 1)], unique=True, name="uniq_symbol_version"
    )
    db[QUALITY_THRESHOLDS].create_index([("version", 1)], unique=True, name="uniq_version")


def write_bar_scores(
    db: Database, symbol: str, scores: pd.DataFrame, *, scored_at: dt.datetime
) -> int:
    """Sets ``quality.*`` on the bar documents of ``symbol`` (one update per scored bar).

    Args:
        db: The project database.
        symbol: The symbol.
        scores: Output of ``quality.score_bars`` (index ``ts``; duplicates keep the last row).
        scored_at: When the scores were computed.

    Returns:
        Number of bar documents matched.
    """
    return write_bar_scores_many(db, {symbol: scores}, scored_at=scored_at)


def write_bar_scores_many(
    db: Database, scores_by_symbol: Mapping[str, pd.DataFrame], *, scored_at: dt.datetime
) -> int:
    """:func:`write_bar_scores` of many symbols in one bulk write (one round trip).

    Returns:
        Number of bar documents matched.
    """
    ops = []
    for symbol, scores in scores_by_symbol.items():
        frame = scores[~scores.index.duplicated(keep="last")]
        cols = {
            name: frame[name].to_numpy(dtype=object) if name in frame else [None] * len(frame)
            for name in ("iforest", "prophet", "severity", "flags", "rules", "market_event", "kind")
        }
        for i, ts in enumerate(frame.index):
            quality = {
                "iforest": _num(cols["iforest"][i]),
                "prophet": _num(cols["prophet"][i]),
                "severity": str(cols["severity"][i]),
                "flags": sorted({*list(cols["flags"][i] or [])}),
                "rules": list(cols["rules"][i] or []),
                "market_event": bool(
                    False if cols["market_event"][i] is None else cols["market_event"][i]
                ),
                "kind": str(cols["kind"][i] or ""),
                "scored_at": scored_at,
            }
            ops.append(UpdateOne({"symbol": symbol, "ts": utc(ts)}, {"$set": {"quality": quality}}))
    if not ops:
        return 0
    return db[BARS].bulk_write(ops, ordered=False).matched_count


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def upsert_anomalies(db: Database, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Upserts anomaly rows on (symbol, ts, detector); analyst fields are never overwritten.

    New rows start ``open`` with ``created_at``; a re-scored row updates its score, severity
    and threshold only. Returns the stored documents (with ``_id``).
    """
    now = dt.datetime.now(dt.UTC)
    rows = list(rows)
    ops = []
    for row in rows:
        key = {"symbol": row["symbol"], "ts": utc(row["ts"]), "detector": row["detector"]}
        fields = {k: v for k, v in row.items() if k not in {"symbol", "ts", "detector"}}
        ops.append(
            UpdateOne(
                key,
                {
                    "$set": {**fields, "updated_at": now},
                    "$setOnInsert": {"status": "open", "created_at": now, "history": []},
                },
                upsert=True,
            )
        )
    if not ops:
        return []
    db[ANOMALIES].bulk_write(ops, ordered=False)
    keys = [{"symbol": r["symbol"], "ts": utc(r["ts"]), "detector": r["detector"]} for r in rows]
    return list(db[ANOMALIES].find({"$or": keys}))


def false_positive_times(db: Database, symbol: str) -> pd.DatetimeIndex:
    """Bar times that analysts marked false positive for ``symbol`` (left out of training)."""
    stamps = db[ANOMALIES].distinct("ts", {"symbol": symbol, "status": FALSE_POSITIVE})
    return pd.DatetimeIndex(sorted(utc(t) for t in stamps))


def false_positive_times_many(db: Database, symbols: Iterable[str]) -> dict[str, pd.DatetimeIndex]:
    """:func:`false_positive_times` of many symbols in one query (every symbol a key)."""
    names = list(symbols)
    found: dict[str, set[dt.datetime]] = {name: set() for name in names}
    if names:
        docs = db[ANOMALIES].find(
            {"symbol": {"$in": names}, "status": FALSE_POSITIVE}, {"_id": 0, "symbol": 1, "ts": 1}
        )
        for doc in docs:
            found[doc["symbol"]].add(utc(doc["ts"]))
    return {name: pd.DatetimeIndex(sorted(stamps)) for name, stamps in found.items()}


def confirmed_times(db: Database, symbol: str) -> pd.DatetimeIndex:
    """Bar times of anomalies analysts confirmed (resolved) for ``symbol``: they leave the
    calibration's clean sample."""
    stamps = db[ANOMALIES].distinct("ts", {"symbol": symbol, "status": RESOLVED})
    return pd.DatetimeIndex(sorted(utc(t) for t in stamps))


def save_prophet(db: Database, symbol: str, version: str, model_json: str, **fields: Any) -> None:
    """Stores one symbol's serialized Prophet models under ``version`` (upsert)."""
    db[QUALITY_MODELS].update_one(
        {"symbol": symbol, "version": version},
        {"$set": {"model_json": model_json, **fields, "saved_at": dt.datetime.now(dt.UTC)}},
        upsert=True,
    )


def latest_prophet(db: Database, symbol: str) -> dict[str, Any] | None:
    """The newest Prophet document of ``symbol``, or None."""
    return db[QUALITY_MODELS].find_one({"symbol": symbol}, sort=[("saved_at", DESCENDING)])


def latest_prophets(db: Database, symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The newest Prophet document of each symbol that has one (two queries for all symbols:
    the versions' keys, then the newest documents, so old versions' models are not read)."""
    names = list(symbols)
    if not names:
        return {}
    newest: dict[str, Any] = {}
    keys = db[QUALITY_MODELS].find(
        {"symbol": {"$in": names}}, {"_id": 1, "symbol": 1}, sort=[("saved_at", DESCENDING)]
    )
    for doc in keys:
        newest.setdefault(doc["symbol"], doc["_id"])
    docs = db[QUALITY_MODELS].find({"_id": {"$in": list(newest.values())}})
    return {doc["symbol"]: doc for doc in docs}


def save_thresholds(db: Database, thresholds: Any, **fields: Any) -> str:
    """Stores a ``quality.Thresholds`` (a dataclass) under its version; returns the version."""
    doc = dataclasses.asdict(thresholds)
    db[QUALITY_THRESHOLDS].update_one(
        {"version": doc["version"]},
        {"$set": {**doc, **fields, "saved_at": dt.datetime.now(dt.UTC)}},
        upsert=True,
    )
    return doc["version"]


def latest_thresholds(db: Database) -> dict[str, Any] | None:
    """The newest thresholds document, or None."""
    return db[QUALITY_THRESHOLDS].find_one({}, {"_id": 0}, sort=[("saved_at", DESCENDING)])


def record_batch_scores(
    db: Database, batch_id: str, counts: Mapping[str, int], *, scored_at: dt.datetime
) -> None:
    """Sets a batch's anomaly counts by severity (upsert: scoring may run before ingestion
    recorded the batch, e.g. on a backfill of old bars)."""
    db[INGEST_BATCHES].update_one(
        {"batch_id": batch_id},
        {"$set": {"anomalies_by_severity": dict(counts), "scored_at": scored_at}},
        upsert=True,
    )


def anomaly_counts(db: Database, field: str) -> dict[str, int]:
    """Anomalies counted by the values of ``field`` (``severity``, ``status``, ``symbol``)."""
    pipeline = [{"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
    return {str(d["_id"]): int(d["n"]) for d in db[ANOMALIES].aggregate(pipeline)}


def flagged_per_batch(db: Database) -> list[int]:
    """Bars at warning or above in each scored batch (one number per batch)."""
    docs = db[INGEST_BATCHES].find(
        {"anomalies_by_severity": {"$exists": True}}, {"anomalies_by_severity": 1}
    )
    return [
        int(d["anomalies_by_severity"].get("warning", 0))
        + int(d["anomalies_by_severity"].get("critical", 0))
        for d in docs
    ]


def latest_anomalies(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` most recent anomalies by bar time, newest first."""
    return list(db[ANOMALIES].find({}, {"_id": 0}).sort("ts", DESCENDING).limit(limit))
