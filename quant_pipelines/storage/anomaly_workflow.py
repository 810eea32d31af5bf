"""The analysts' workflow on ``anomalies``: acknowledge, resolve, false positive (pymongo only).

Anomaly states: ``open`` -> ``acknowledged`` -> ``resolved`` | ``false_positive`` (both
terminal); every transition is timestamped, which gives time to resolution. See
``docs/alerts.md``.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.database import Database

from quant_pipelines._utils.time import utc, utc_now
from quant_pipelines.storage.collections import ALERT_OUTBOX, ANOMALIES

OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE = "open", "acknowledged", "resolved", "false_positive"
#: Analyst action -> target status; the time of reaching a status is stored as ``<status>_at``.
ACTIONS = {"ack": ACKNOWLEDGED, "resolve": RESOLVED, "false_positive": FALSE_POSITIVE}
_ALLOWED_FROM = {ACKNOWLEDGED: (OPEN,), RESOLVED: (OPEN, ACKNOWLEDGED)}
_ALLOWED_FROM[FALSE_POSITIVE] = _ALLOWED_FROM[RESOLVED]
ANOMALY_STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE)


class AnomalyNotFoundError(LookupError):
    """No anomaly has the given id."""


class InvalidTransitionError(ValueError):
    """The action is not allowed from the anomaly's current status."""


def _id_candidates(anomaly_id: Any) -> list[Any]:
    if isinstance(anomaly_id, str) and ObjectId.is_valid(anomaly_id):
        return [ObjectId(anomaly_id), anomaly_id]
    return [anomaly_id]


_ROW_FIELDS = ("idempotency_key", "channel", "attempts", "last_error", "next_attempt_at")
_ROW_FIELDS += ("created_at", "sent_at")


def list_alerts(
    db: Database,
    *,
    delivery_status: str | None = None,
    channel: str | None = None,
    severity: str | None = None,
    symbol: str | None = None,
    limit: int = 100,
) -> list[dict]:
    """Outbox alerts, newest first, with the delivery state and the anomaly's workflow status.

    Failed alerts are kept and listed, so nothing that could not be delivered is lost.

    Returns:
        Flat rows: ``idempotency_key, channel, delivery_status, attempts, last_error,
        next_attempt_at, created_at, sent_at, anomaly_id, anomaly_status`` plus the payload fields.
    """
    filters = {"status": delivery_status, "channel": channel}
    filters.update({"payload.severity": severity, "payload.symbol": symbol})
    query = {k: v for k, v in filters.items() if v is not None}
    docs = list(db[ALERT_OUTBOX].find(query).sort("created_at", DESCENDING).limit(limit))
    ids = [
        c
        for d in docs
        if d["payload"].get("anomaly_id")
        for c in _id_candidates(d["payload"]["anomaly_id"])
    ]
    statuses = (
        {
            str(a["_id"]): a.get("status") or OPEN
            for a in db[ANOMALIES].find({"_id": {"$in": ids}}, {"status": 1})
        }
        if ids
        else {}
    )
    return [
        {
            **d["payload"],
            **{f: d.get(f) for f in _ROW_FIELDS},
            "delivery_status": d["status"],
            "anomaly_status": statuses.get(str(d["payload"].get("anomaly_id"))),
        }
        for d in docs
    ]


def _anomaly_query(
    *, status=None, severity=None, symbol=None, since=None, until=None
) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if status is not None:
        query["status"] = {"$in": [None, OPEN]} if status == OPEN else status
    if severity is not None:
        query["severity"] = severity
    if symbol is not None:
        query["symbol"] = symbol
    bounds = {k: v for k, v in (("$gte", since), ("$lt", until)) if v is not None}
    if bounds:
        query["ts"] = bounds
    return query


def list_anomalies(
    db: Database,
    *,
    status: str | None = None,
    severity: str | None = None,
    symbol: str | None = None,
    limit: int = 100,
) -> list[dict]:
    """Anomalies, newest bar first, filtered by workflow status, severity and symbol.

    A document without ``status`` counts as ``open``.
    """
    query = _anomaly_query(status=status, severity=severity, symbol=symbol)
    return list(db[ANOMALIES].find(query).sort("ts", DESCENDING).limit(limit))


def _opened_at(doc: Mapping[str, Any]) -> dt.datetime | None:
    for field in ("created_at", "detected_at", "ts"):
        if isinstance(doc.get(field), dt.datetime):
            return utc(doc[field])
    return None


def transition(
    db: Database,
    anomaly_id: Any,
    action: str,
    *,
    note: str | None = None,
    actor: str | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Applies an analyst action to one anomaly, atomically, and records it in ``history``.

    Allowed: open -> acknowledged | resolved | false_positive; acknowledged -> resolved |
    false_positive. Repeating the action that produced the current status is a no-op that
    returns the document unchanged; anything else from a terminal status is refused.

    Args:
        db: The project database.
        anomaly_id: The anomaly ``_id`` (an ObjectId, or its 24-hex string, or a string id).
        action: ``ack``, ``resolve`` or ``false_positive``.
        note: Free text kept in the history entry.
        actor: Who acted (user name), kept in the history entry.
        now: Time of the action (default: the clock).

    Returns:
        The anomaly document after the action.

    Raises:
        ValueError: Unknown action.
        AnomalyNotFoundError: No anomaly has that id.
        InvalidTransitionError: The action is not allowed from the current status.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {sorted(ACTIONS)}")
    target = ACTIONS[action]
    now = utc(now) if now is not None else utc_now()
    coll = db[ANOMALIES]
    for _ in range(5):  # optimistic: retried when a concurrent action changed the status
        doc = coll.find_one({"_id": {"$in": _id_candidates(anomaly_id)}})
        if doc is None:
            raise AnomalyNotFoundError(f"no anomaly with id {anomaly_id!r}")
        current = doc.get("status") or OPEN
        if current == target:
            return doc
        if current not in _ALLOWED_FROM[target]:
            raise InvalidTransitionError(
                f"cannot {action} anomaly {anomaly_id}: it is already {current} "
                f"({action} is allowed only from {' or '.join(_ALLOWED_FROM[target])})"
            )
        fields: dict[str, Any] = {"status": target, f"{target}_at": now, "updated_at": now}
        if target in (RESOLVED, FALSE_POSITIVE):
            fields["closed_at"] = now
            opened = _opened_at(doc)
            if opened is not None:
                fields["time_to_resolution_s"] = max(0.0, (now - opened).total_seconds())
        entry = {"action": action, "from": current, "to": target, "at": now}
        entry.update(actor=actor, note=note)
        updated = coll.find_one_and_update(
            {"_id": doc["_id"], "status": doc.get("status")},
            {"$set": fields, "$push": {"history": entry}},
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None:
            return updated
    raise InvalidTransitionError(f"anomaly {anomaly_id} kept changing concurrently; try again")


@dataclass(frozen=True)
class ResolutionStats:
    """Time from detection to resolution, in seconds (None when ``count`` is 0)."""

    count: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None
    max_s: float | None


def time_to_resolution(
    db: Database,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    severity: str | None = None,
    symbol: str | None = None,
    include_false_positives: bool = False,
) -> ResolutionStats:
    """Statistics of ``time_to_resolution_s`` over closed anomalies with ``since <= ts < until``."""
    statuses = [RESOLVED, FALSE_POSITIVE] if include_false_positives else [RESOLVED]
    query = _anomaly_query(severity=severity, symbol=symbol, since=since, until=until)
    query.update({"status": {"$in": statuses}, "time_to_resolution_s": {"$ne": None}})
    values = sorted(
        d["time_to_resolution_s"] for d in db[ANOMALIES].find(query, {"time_to_resolution_s": 1})
    )
    if not values:
        return ResolutionStats(0, None, None, None, None)
    p90 = (
        values[0]
        if len(values) == 1
        else statistics.quantiles(values, n=10, method="inclusive")[-1]
    )
    return ResolutionStats(
        count=len(values),
        mean_s=statistics.fmean(values),
        median_s=statistics.median(values),
        p90_s=p90,
        max_s=values[-1],
    )


@dataclass(frozen=True)
class FalsePositiveRate:
    """False positives among reviewed (resolved or false-positive) anomalies."""

    false_positives: int
    reviewed: int
    total: int
    rate: float | None


def false_positive_rate(
    db: Database,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    severity: str | None = None,
    symbol: str | None = None,
) -> FalsePositiveRate:
    """``false_positive / (resolved + false_positive)`` for anomalies with ``since <= ts < until``.

    Open and acknowledged anomalies are not reviewed yet and stay out of the denominator;
    ``total`` counts them all. ``rate`` is None when nothing was reviewed.
    """
    base = _anomaly_query(severity=severity, symbol=symbol, since=since, until=until)
    coll = db[ANOMALIES]
    fp = coll.count_documents({**base, "status": FALSE_POSITIVE})
    resolved = coll.count_documents({**base, "status": RESOLVED})
    total = coll.count_documents(base)
    reviewed = fp + resolved
    return FalsePositiveRate(fp, reviewed, total, fp / reviewed if reviewed else None)


_ANOMALY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def find_anomaly(db: Database, anomaly_id: str) -> dict[str, Any] | None:
    """The anomaly with this id (an ObjectId's 24 hex digits, or a string id), or None."""
    if not _ANOMALY_ID.match(anomaly_id):
        return None
    candidates: list[Any] = [anomaly_id]
    if ObjectId.is_valid(anomaly_id):
        candidates.insert(0, ObjectId(anomaly_id))
    doc = db[ANOMALIES].find_one({"_id": {"$in": candidates}})
    if doc is not None:
        doc["id"] = str(doc["_id"])
        doc["status"] = doc.get("status") or OPEN
    return doc
