"""Idempotent creation of every index of the data model."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from quant_pipelines.storage import collections as c

#: Secondary indexes that queries and dashboards rely on (non-unique unless marked).
_SECONDARY: dict[str, list[IndexModel]] = {
    c.BARS: [IndexModel([("batch_id", ASCENDING)], name="batch_id")],
    c.INGEST_BATCHES: [
        IndexModel([("asset", ASCENDING), ("partition", ASCENDING)], name="asset_partition")
    ],
    c.ANOMALIES: [
        IndexModel([("status", ASCENDING), ("severity", ASCENDING)], name="status_severity"),
        IndexModel([("batch_id", ASCENDING)], name="batch_id"),
    ],
    c.ALERT_OUTBOX: [
        IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="due"),
    ],
    c.STUDIES: [
        IndexModel([("strategy", ASCENDING), ("asset_class", ASCENDING)], name="strategy_class")
    ],
    c.TRIALS: [IndexModel([("study_name", ASCENDING), ("value", DESCENDING)], name="study_value")],
    c.OPTIMIZATION_REQUESTS: [
        IndexModel([("status", ASCENDING), ("created_at", ASCENDING)], name="status_created"),
        IndexModel([("requested_by", ASCENDING), ("status", ASCENDING)], name="requester_status"),
    ],
    c.RL_POLICIES: [
        IndexModel([("symbol", ASCENDING), ("created_at", DESCENDING)], name="symbol_created")
    ],
    c.KPIS: [IndexModel([("kpi", ASCENDING), ("computed_at", DESCENDING)], name="kpi_computed")],
    c.API_KEYS: [IndexModel([("name", ASCENDING)], unique=True, name="uniq_name")],
}


def unique_index_name(collection: str) -> str:
    """Name of the unique natural-key index of ``collection``."""
    return "uniq_" + "_".join(c.UNIQUE_KEYS[collection])


def ensure_indexes(db: Database) -> dict[str, list[str]]:
    """Creates every unique and secondary index of the data model; safe to call repeatedly.

    Args:
        db: The project database.

    Returns:
        The index names per collection after the call.
    """
    created: dict[str, list[str]] = {}
    for name, key in c.UNIQUE_KEYS.items():
        models = [
            IndexModel([(k, ASCENDING) for k in key], unique=True, name=unique_index_name(name)),
            *_SECONDARY.get(name, []),
        ]
        created[name] = list(db[name].create_indexes(models))
    return created
