"""Reads of the ``optimization_requests`` collection: one request, lists, what the sensor
launches, and the API's quota count (see :mod:`quant_pipelines.storage.requests`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from quant_pipelines.storage._request_states import (
    DEFERRED,
    LAUNCHED,
    QUEUED,
    REQUEST_STATUSES,
    RUNNING,
)
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS


def _now() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _checked(status: str) -> str:
    if status not in REQUEST_STATUSES:
        raise ValueError(f"unknown request status {status!r}; expected one of {REQUEST_STATUSES}")
    return status


def get_request(db: Database, request_id: str) -> dict[str, Any] | None:
    """The request document (without ``_id``), or None."""
    if not isinstance(request_id, str):
        return None
    return db[OPTIMIZATION_REQUESTS].find_one({"request_id": request_id}, {"_id": 0})


def list_requests(
    db: Database, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Requests, newest first, optionally of one status."""
    query = {} if status is None else {"status": _checked(status)}
    cursor = db[OPTIMIZATION_REQUESTS].find(query, {"_id": 0}).sort("created_at", DESCENDING)
    return list(cursor.limit(limit))


def pending_requests(
    db: Database, *, now: dt.datetime | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Requests waiting for a run, oldest first: for the sensor.

    These are the ``queued`` requests, plus the ``deferred`` ones whose ``deferred_until`` has
    come (or is unset). The sensor decides whether each one starts now (outside market hours,
    or ``urgent``) or is deferred again with :func:`mark_deferred`.

    Args:
        db: The project database.
        now: The sensor's clock (default: the current time).
        limit: At most this many documents.

    Returns:
        Request documents without ``_id``.
    """
    now = now or _now()
    query = {
        "$or": [
            {"status": QUEUED},
            {"status": DEFERRED, "deferred_until": {"$lte": now}},
            {"status": DEFERRED, "deferred_until": None},
        ]
    }
    cursor = db[OPTIMIZATION_REQUESTS].find(query, {"_id": 0})
    return list(cursor.sort([("created_at", ASCENDING), ("request_id", ASCENDING)]).limit(limit))


#: Statuses that count against a key's quota (waiting for, or holding, a run).
ACTIVE_STATUSES: tuple[str, ...] = (QUEUED, DEFERRED, LAUNCHED, RUNNING)


def active_usage(db: Database, requested_by: str) -> tuple[int, int]:
    """What one requester has queued or running: for the per-key quotas of the API.

    Args:
        db: The project database.
        requested_by: The requester (the API key's name, field ``requested_by``).

    Returns:
        The number of queued, deferred or running requests, and the trials they ask for in
        total (``params.n_trials``).
    """
    rows = db[OPTIMIZATION_REQUESTS].aggregate(
        [
            {"$match": {"requested_by": requested_by, "status": {"$in": list(ACTIVE_STATUSES)}}},
            {
                "$group": {
                    "_id": None,
                    "requests": {"$sum": 1},
                    "trials": {"$sum": {"$ifNull": ["$params.n_trials", 0]}},
                }
            },
        ]
    )
    for row in rows:
        return int(row["requests"]), int(row["trials"])
    return 0, 0


def launched_without_run_id(db: Database, *, limit: int = 100) -> list[dict[str, Any]]:
    """Launched requests whose run id is not recorded yet (for the sensor's next tick)."""
    cursor = db[OPTIMIZATION_REQUESTS].find({"status": LAUNCHED, "run_id": None}, {"_id": 0})
    return list(cursor.limit(limit))
