"""The ``alert_outbox`` relay and the analysts' workflow on ``anomalies`` (pymongo only).

Outbox states: ``pending`` -> ``sending`` (claimed with a lease) -> ``sent`` | ``pending``
(retry later) | ``failed``. A ``sending`` document whose lease expired is claimable again, which
is how a worker that died mid-delivery is recovered. Anomaly states: ``open`` ->
``acknowledged`` -> ``resolved`` | ``false_positive`` (both terminal); see ``docs/alerts.md``.
"""

from __future__ import annotations

import datetime as dt
import statistics
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from quant_pipelines.storage.collections import ALERT_OUTBOX, ANOMALIES

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE = "open", "acknowledged", "resolved", "false_positive"
#: Analyst action -> target status; the time of reaching a status is stored as ``<status>_at``.
ACTIONS = {"ack": ACKNOWLEDGED, "resolve": RESOLVED, "false_positive": FALSE_POSITIVE}
_ALLOWED_FROM = {ACKNOWLEDGED: (OPEN,), RESOLVED: (OPEN, ACKNOWLEDGED)}
_ALLOWED_FROM[FALSE_POSITIVE] = _ALLOWED_FROM[RESOLVED]
OUTBOX_STATUSES = (PENDING, SENDING, SENT, FAILED)
ANOMALY_STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE)
_DUPLICATE_KEY = 11000


class AnomalyNotFoundError(LookupError):
    """No anomaly has the given id."""


class InvalidTransitionError(ValueError):
    """The action is not allowed from the anomaly's current status."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class EnqueueReport:
    """What one enqueue did: ``inserted`` new outbox documents, ``existing`` already there."""

    inserted: int
    existing: int
    skipped: int = 0


class AlertOutboxRepository:
    """The ``alert_outbox`` collection, keyed by ``idempotency_key`` (one per alert and channel)."""

    def __init__(self, db: Database) -> None:
        self._coll = db[ALERT_OUTBOX]

    def enqueue(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        now: dt.datetime | None = None,
        session: ClientSession | None = None,
    ) -> EnqueueReport:
        """Inserts outbox documents that do not exist yet; existing ones are left untouched.

        Args:
            docs: Documents with at least ``idempotency_key``, ``channel`` and ``payload``.
            now: Creation time (default: the clock).
            session: Optional session, to enqueue in the same transaction as the anomalies.

        Returns:
            Counts of inserted and already present documents.
        """
        if not docs:
            return EnqueueReport(0, 0)
        now = now or _utcnow()
        new = {"status": PENDING, "attempts": 0, "next_attempt_at": now, "last_error": None}
        new.update(created_at=now, sent_at=None, lease_until=None)
        ops = [
            UpdateOne(
                {"idempotency_key": doc["idempotency_key"]},
                {"$setOnInsert": {**new, **doc}},
                upsert=True,
            )
            for doc in docs
        ]
        try:
            inserted = self._coll.bulk_write(ops, ordered=False, session=session).upserted_count
        except BulkWriteError as exc:  # a racing enqueuer inserted the same key first
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            inserted = exc.details.get("nUpserted", 0)
        return EnqueueReport(inserted=inserted, existing=len(ops) - inserted)

    def claim_next(
        self,
        *,
        channels: Sequence[str],
        now: dt.datetime,
        lease_until: dt.datetime,
        exclude: Sequence[Any] = (),
    ) -> dict | None:
        """Atomically claims one due alert: pending and due, or sending with an expired lease.

        The claim sets ``status=sending``, a fresh ``claim_id`` and ``lease_until``, and
        counts the attempt, so no other worker can claim it until the lease expires.

        Returns:
            The claimed document (after the update), or None when nothing is due.
        """
        query: dict[str, Any] = {
            "channel": {"$in": list(channels)},
            "$or": [
                {"status": PENDING, "next_attempt_at": {"$lte": now}},
                {"status": SENDING, "lease_until": {"$lte": now}},
            ],
        }
        if exclude:
            query["_id"] = {"$nin": list(exclude)}
        update = {
            "$set": {
                "status": SENDING,
                "claim_id": uuid.uuid4().hex,
                "claimed_at": now,
                "lease_until": lease_until,
            },
            "$inc": {"attempts": 1},
        }
        return self._coll.find_one_and_update(
            query,
            update,
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    def finish(
        self,
        doc: Mapping[str, Any],
        status: str,
        *,
        now: dt.datetime,
        status_code: int | None = None,
        error: str | None = None,
        next_attempt_at: dt.datetime | None = None,
    ) -> bool:
        """Records the outcome of a claimed alert, only if the claim still holds.

        Args:
            doc: The document returned by :meth:`claim_next`.
            status: ``sent``, ``pending`` (retry at ``next_attempt_at``) or ``failed``.
            now: Time of the outcome (``sent_at`` / ``failed_at``).
            status_code: HTTP status of the attempt, if any.
            error: What went wrong (no secrets); cleared when sent.
            next_attempt_at: When a retry is due (``pending`` only).

        Returns:
            False when another worker took the claim over (its lease had expired).
        """
        fields: dict[str, Any] = {"status": status, "last_status_code": status_code}
        fields.update(last_error=error, lease_until=None)
        if status == SENT:
            fields["sent_at"] = now
        elif status == FAILED:
            fields["failed_at"] = now
        elif status == PENDING and next_attempt_at is not None:
            fields["next_attempt_at"] = next_attempt_at
        else:
            raise ValueError(f"cannot finish an alert as {status!r}")
        query = {"_id": doc["_id"], "status": SENDING, "claim_id": doc["claim_id"]}
        return self._coll.update_one(query, {"$set": fields}).modified_count == 1

    def requeue(self, idempotency_key: str, *, now: dt.datetime | None = None) -> bool:
        """Puts a failed alert back to pending with a fresh attempt budget (operator action)."""
        now = now or _utcnow()
        update = {"$set": {"status": PENDING, "attempts": 0, "next_attempt_at": now}}
        query = {"idempotency_key": idempotency_key, "status": FAILED}
        return self._coll.update_one(query, update).modified_count == 1

    def get(self, idempotency_key: str) -> dict | None:
        """The outbox document, or None."""
        return self._coll.find_one({"idempotency_key": idempotency_key})

    def count_pending(self, *, channels_not_in: Sequence[str] = ()) -> int:
        """Pending or sending alerts, optionally only those of channels outside a list."""
        query: dict[str, Any] = {"status": {"$in": [PENDING, SENDING]}}
        if channels_not_in:
            query["channel"] = {"$nin": list(channels_not_in)}
        return self._coll.count_documents(query)


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
            return _aware(doc[field])
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
    now = _aware(now or _utcnow())
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
