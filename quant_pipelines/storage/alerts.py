"""The ``alert_outbox`` relay (pymongo only); re-exports the analysts' workflow.

Outbox states: ``pending`` -> ``sending`` (claimed with a lease) -> ``sent`` | ``pending``
(retry later) | ``failed``. A ``sending`` document whose lease expired is claimable again, which
is how a worker that died mid-delivery is recovered. Anomaly states: ``open`` ->
``acknowledged`` -> ``resolved`` | ``false_positive`` (both terminal); see ``docs/alerts.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from quant_pipelines._utils.time import utc_now
from quant_pipelines.storage.anomaly_workflow import (
    ACKNOWLEDGED,
    ACTIONS,
    ANOMALY_STATUSES,
    FALSE_POSITIVE,
    OPEN,
    RESOLVED,
    AnomalyNotFoundError,
    FalsePositiveRate,
    InvalidTransitionError,
    ResolutionStats,
    false_positive_rate,
    list_alerts,
    list_anomalies,
    time_to_resolution,
    transition,
)
from quant_pipelines.storage.collections import ALERT_OUTBOX

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
OUTBOX_STATUSES = (PENDING, SENDING, SENT, FAILED)
_DUPLICATE_KEY = 11000


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
        now = now or utc_now()
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
        now = now or utc_now()
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


__all__ = [
    "ACKNOWLEDGED",
    "ACTIONS",
    "ANOMALY_STATUSES",
    "FAILED",
    "FALSE_POSITIVE",
    "OPEN",
    "OUTBOX_STATUSES",
    "PENDING",
    "RESOLVED",
    "SENDING",
    "SENT",
    "AlertOutboxRepository",
    "AnomalyNotFoundError",
    "EnqueueReport",
    "FalsePositiveRate",
    "InvalidTransitionError",
    "ResolutionStats",
    "false_positive_rate",
    "list_alerts",
    "list_anomalies",
    "time_to_resolution",
    "transition",
]
