"""The ``optimization_requests`` repository: optimization requests made over HTTP (pymongo only).

Status vocabulary and lifecycle::

    queued ──────────────┬──> running ──> succeeded
      │  ^               │       └──────> failed
      v  │ (re-deferred) │
    deferred ────────────┘

* ``queued``: written by the API (``POST /backtests/optimize``); waiting for the sensor.
* ``deferred``: the sensor postponed it to the next optimization window (``deferred_until``).
* ``running``: the sensor launched a Dagster run (``run_id``, ``launched_at``); the run
  reports ``progress`` while the study goes on.
* ``succeeded`` / ``failed``: terminal, stamped ``finished_at`` (``error`` when failed); a
  request that never got a run (e.g. refused by the sensor) may fail from queued or deferred.

Every change appends ``{status, at, run_id?, note?}`` to ``history``. The ``request_id`` is
unique; a request made with an ``Idempotency-Key`` gets a request id derived from the key, so
the unique index itself guarantees one document per key, even under concurrent retries.

The request id is chosen before the write, and the write is an upsert on it: when MongoDB
applied the write but answered with a retryable error (a ``writeConcernError``, a dropped
connection), the repeated write finds the document it made instead of making a second one. A
client that repeats a POST itself (say after a timeout) must send an Idempotency-Key: without
one, every POST is a new request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS

_log = logging.getLogger(__name__)

QUEUED, DEFERRED, RUNNING, SUCCEEDED, FAILED = (
    "queued",
    "deferred",
    "running",
    "succeeded",
    "failed",
)
#: Every status a request can have, in lifecycle order.
REQUEST_STATUSES: tuple[str, ...] = (QUEUED, DEFERRED, RUNNING, SUCCEEDED, FAILED)
#: Statuses waiting for a run (what the sensor looks at).
PENDING_STATUSES: tuple[str, ...] = (QUEUED, DEFERRED)
#: Statuses a request never leaves.
TERMINAL_STATUSES: tuple[str, ...] = (SUCCEEDED, FAILED)
_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    QUEUED: (QUEUED, DEFERRED),
    DEFERRED: (QUEUED, DEFERRED),
    RUNNING: (QUEUED, DEFERRED, RUNNING),
    SUCCEEDED: (QUEUED, DEFERRED, RUNNING),
    FAILED: (QUEUED, DEFERRED, RUNNING),
}
#: Fields of ``progress`` the runner reports (all optional).
PROGRESS_FIELDS = ("done", "total", "best_value", "best_params", "trials_per_hour", "eta_s")


class RequestNotFoundError(LookupError):
    """No optimization request has the given id."""


class InvalidRequestTransitionError(ValueError):
    """The status change is not allowed from the request's current status."""


class IdempotencyConflictError(ValueError):
    """An Idempotency-Key was reused with a different request body.

    Attributes:
        request_id: The id of the request first made with that key.
    """

    def __init__(self, message: str, request_id: str) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass(frozen=True)
class CreateResult:
    """What :func:`create_request` did: the stored document and whether it was new."""

    document: dict[str, Any]
    created: bool


def _utcnow() -> dt.datetime:
    # MongoDB keeps milliseconds; truncating keeps the returned and stored values equal.
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def request_fingerprint(params: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``params`` (key order does not matter)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_id_for_key(idempotency_key: str) -> str:
    """The request id that an Idempotency-Key maps to (stable, 32 hex digits)."""
    return "req_" + hashlib.sha256(f"idempotency:{idempotency_key}".encode()).hexdigest()[:32]


def new_request_id() -> str:
    """A fresh random request id (``req_`` and 32 hex digits)."""
    return "req_" + uuid.uuid4().hex


def create_request(
    db: Database,
    params: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    study_name: str | None = None,
    extra: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> CreateResult:
    """Records a new request as ``queued``, or returns the one already made with the same key.

    Args:
        db: The project database.
        params: The validated request (strategy, symbols, start, end, n_trials, objective,
            sampler, seed, walk_forward, urgent); stored as given under ``params``.
        idempotency_key: The client's Idempotency-Key; the same key gives the same request.
        study_name: The Optuna study the run optimizes (default ``"<strategy>-<request_id>"``).
        extra: Further top-level fields for a new document (e.g. ``asset_classes``).
        now: Creation time (default: the clock).

    Returns:
        The stored document and ``created`` (False when the key had been used already). A
        write that MongoDB applied but answered with a retryable error is repeated (an upsert
        on the same id, so at most one document) and counts as created.

    Raises:
        IdempotencyConflictError: The key was used before with different ``params``.
    """
    now = now or _utcnow()
    fingerprint = request_fingerprint(params)
    request_id = request_id_for_key(idempotency_key) if idempotency_key else new_request_id()
    doc: dict[str, Any] = {
        "request_id": request_id,
        "status": QUEUED,
        "params": dict(params),
        "urgent": bool(params.get("urgent", False)),
        "study_name": study_name or f"{params.get('strategy', 'study')}-{request_id}",
        "idempotency_key": idempotency_key,
        "fingerprint": fingerprint,
        "run_id": None,
        "progress": None,
        "error": None,
        "deferred_until": None,
        "created_at": now,
        "updated_at": now,
        "launched_at": None,
        "finished_at": None,
        "history": [{"status": QUEUED, "at": now}],
    }
    for key, value in (extra or {}).items():
        doc.setdefault(key, value)
    # The id (and the _id) are fixed before the first attempt and the write is an upsert on the
    # request id: retrying it, by the driver or below, can never create a second document.
    doc["_id"] = ObjectId()
    coll = db[OPTIMIZATION_REQUESTS]
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        try:
            written = coll.update_one(
                {"request_id": request_id}, {"$setOnInsert": doc}, upsert=True
            )
        except DuplicateKeyError:
            break  # a concurrent request with the same key inserted first
        except PyMongoError as exc:
            if attempt == _WRITE_ATTEMPTS or not _may_retry_write(exc):
                raise
            _log.warning("retrying the write of request %s after %s", request_id, type(exc))
            continue
        if written.upserted_id is not None:
            doc.pop("_id")
            return CreateResult(doc, created=True)
        break
    existing = coll.find_one({"request_id": request_id})
    if existing is None:  # pragma: no cover - deleted between the write and the read
        raise RequestNotFoundError(f"request {request_id} vanished while being created")
    if existing.pop("_id") == doc["_id"]:  # an earlier attempt of ours was applied
        doc.pop("_id")
        return CreateResult(doc, created=True)
    if existing.get("fingerprint") != fingerprint:
        raise IdempotencyConflictError(
            "Idempotency-Key was already used with a different request body "
            f"(request {request_id})",
            request_id,
        )
    return CreateResult(existing, created=False)


#: Attempts of :func:`create_request`'s write, each on top of the driver's own single retry.
_WRITE_ATTEMPTS = 2


def _may_retry_write(exc: PyMongoError) -> bool:
    """Whether the write may have failed transiently (and so may be repeated at once).

    A ``writeConcernError`` (the write was applied but its durability is not confirmed), an
    error labelled ``RetryableWriteError``, or a dropped connection. Not a timeout: the
    request's deadline is spent, and not a server selection failure: nothing was sent.
    """
    if getattr(exc, "timeout", False) or isinstance(exc, ServerSelectionTimeoutError):
        return False
    return isinstance(exc, WriteConcernError | AutoReconnect) or exc.has_error_label(
        "RetryableWriteError"
    )


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
    now = now or _utcnow()
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
ACTIVE_STATUSES: tuple[str, ...] = (QUEUED, DEFERRED, RUNNING)


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


def _checked(status: str) -> str:
    if status not in REQUEST_STATUSES:
        raise ValueError(f"unknown request status {status!r}; expected one of {REQUEST_STATUSES}")
    return status


def _apply(
    db: Database,
    request_id: str,
    target: str,
    fields: Mapping[str, Any],
    *,
    now: dt.datetime,
    entry: Mapping[str, Any] | None = None,
    allowed: Sequence[str] | None = None,
    extra_query: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Moves a request to ``target`` if its current status allows it (atomically)."""
    allowed = _ALLOWED_FROM[target] if allowed is None else allowed
    update = {
        "$set": {"status": target, "updated_at": now, **fields},
        "$push": {"history": {"status": target, "at": now, **(entry or {})}},
    }
    query = {"request_id": request_id, "status": {"$in": list(allowed)}, **(extra_query or {})}
    updated = db[OPTIMIZATION_REQUESTS].find_one_and_update(
        query,
        update,
        projection={"_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    if updated is not None:
        return updated
    current = get_request(db, request_id)
    if current is None:
        raise RequestNotFoundError(f"no optimization request with id {request_id!r}")
    raise InvalidRequestTransitionError(
        f"request {request_id} is {current['status']} (run {current.get('run_id')}); "
        f"it cannot become {target} (allowed only from {' or '.join(allowed)})"
    )


def mark_launched(
    db: Database, request_id: str, run_id: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Records that the sensor launched Dagster run ``run_id``: the request becomes ``running``.

    Idempotent: calling it again with the same ``run_id`` returns the document unchanged.

    Raises:
        RequestNotFoundError: Unknown request.
        InvalidRequestTransitionError: The request already finished, or runs under another run.
    """
    current = get_request(db, request_id)
    if current is not None and current.get("run_id") == run_id:
        return current
    now = now or _utcnow()
    fields = {"run_id": run_id, "launched_at": now}
    try:
        return _apply(
            db,
            request_id,
            RUNNING,
            fields,
            now=now,
            entry={"run_id": run_id},
            allowed=PENDING_STATUSES,
            extra_query={"run_id": None},
        )
    except InvalidRequestTransitionError:
        again = get_request(db, request_id) or {}
        if again.get("run_id") == run_id:  # a concurrent tick recorded the same run
            return again
        raise


def mark_deferred(
    db: Database,
    request_id: str,
    until: dt.datetime,
    *,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Defers a pending request to ``until`` (the next optimization window).

    Raises:
        RequestNotFoundError: Unknown request.
        InvalidRequestTransitionError: The request was launched or finished already.
    """
    if until.tzinfo is None:
        raise ValueError("until must be timezone-aware (UTC)")
    now = now or _utcnow()
    entry = {"until": until, **({"note": reason} if reason else {})}
    return _apply(db, request_id, DEFERRED, {"deferred_until": until}, now=now, entry=entry)


def update_status(
    db: Database,
    request_id: str,
    status: str,
    *,
    progress: Mapping[str, Any] | None = None,
    error: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Sets a request's status, with optional progress and error (for the run and its hooks).

    ``succeeded`` and ``failed`` are terminal and stamp ``finished_at``; reporting progress
    again while ``running`` is allowed and only adds a history entry when the status changes.

    Args:
        db: The project database.
        request_id: The request.
        status: One of :data:`REQUEST_STATUSES`.
        progress: Fields of :data:`PROGRESS_FIELDS` to merge into ``progress``.
        error: What went wrong (stored as ``error``; never put secrets here).
        now: Time of the change (default: the clock).

    Returns:
        The document after the change.

    Raises:
        ValueError: Unknown status or progress field.
        RequestNotFoundError: Unknown request.
        InvalidRequestTransitionError: The request already finished (or, for ``queued`` and
            ``deferred``, was launched already).
    """
    _checked(status)
    now = now or _utcnow()
    fields: dict[str, Any] = {}
    for key, value in (progress or {}).items():
        if key not in PROGRESS_FIELDS:
            raise ValueError(f"unknown progress field {key!r}; expected {PROGRESS_FIELDS}")
        fields[f"progress.{key}"] = value
    if error is not None:
        fields["error"] = error
    if status in TERMINAL_STATUSES:
        fields["finished_at"] = now
    current = get_request(db, request_id)
    if current is None:
        raise RequestNotFoundError(f"no optimization request with id {request_id!r}")
    if current["status"] == status and status in TERMINAL_STATUSES:
        return current  # a repeated final report (e.g. two run-status hooks)
    if progress and current.get("progress") is None:  # cannot $set "progress.x" on null
        fields = {k: v for k, v in fields.items() if not k.startswith("progress.")}
        fields["progress"] = dict(progress)
    if current["status"] == status == RUNNING:
        updated = db[OPTIMIZATION_REQUESTS].find_one_and_update(
            {"request_id": request_id, "status": RUNNING},
            {"$set": {"updated_at": now, **fields}},
            projection={"_id": 0},
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None:
            return updated
    entry = {"note": error} if error else None
    return _apply(db, request_id, status, fields, now=now, entry=entry)


__all__ = [
    "ACTIVE_STATUSES",
    "DEFERRED",
    "FAILED",
    "PENDING_STATUSES",
    "PROGRESS_FIELDS",
    "QUEUED",
    "REQUEST_STATUSES",
    "RUNNING",
    "SUCCEEDED",
    "TERMINAL_STATUSES",
    "CreateResult",
    "IdempotencyConflictError",
    "InvalidRequestTransitionError",
    "RequestNotFoundError",
    "active_usage",
    "create_request",
    "get_request",
    "list_requests",
    "mark_deferred",
    "mark_launched",
    "new_request_id",
    "pending_requests",
    "request_fingerprint",
    "request_id_for_key",
    "update_status",
]
