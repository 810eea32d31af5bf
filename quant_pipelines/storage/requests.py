"""The ``optimization_requests`` repository: optimization requests made over HTTP (pymongo only).

The request lifecycle, and who writes each status (:data:`TRANSITIONS` holds the allowed
changes; every writer goes through it)::

    queued ──> launched ──> running ──> succeeded | failed | canceled
      │  ^        │  ^         │
      v  │        │  └─────────┤ (a run stopped at its wall-clock limit: deferred, resumed later)
    deferred <────┴────────────┘

* ``queued``: the API (``POST /backtests/optimize``); waiting for the sensor.
* ``deferred``: the request sensor postponed it to the next optimization window
  (``deferred_until``), or the run-status sensor put it back after its run stopped at the
  wall-clock limit (``resumes`` + 1, see :mod:`quant_pipelines.storage._request_resume`).
* ``launched``: the request sensor asked Dagster for a run (``run_key``, ``launched_at``);
  ``run_id`` is recorded as soon as the run exists (next sensor tick, or its first status event).
* ``running``: the run-status sensor saw the run start.
* ``succeeded`` / ``failed`` / ``canceled``: the run-status sensor, when the run ended
  (``run_id``, ``finished_at``; ``error`` when failed). A request that never got a run may also
  fail (or be canceled) from queued or deferred.

Progress is not kept here: the optimizer writes it to the study document (``studies.progress``,
vocabulary ``optimizer.progress.PROGRESS_FIELDS``), which the API reads.

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
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database

from quant_pipelines._utils.time import utc_now
from quant_pipelines.optimizer._vocabulary import PROGRESS_FIELDS as _PROGRESS_FIELDS
from quant_pipelines.storage._request_create import (
    CreateResult,
    IdempotencyConflictError,
    create_request,
    new_request_id,
    request_fingerprint,
    request_id_for_key,
)
from quant_pipelines.storage._request_queries import (
    ACTIVE_STATUSES,
    _checked,
    active_usage,
    get_request,
    launched_without_run_id,
    list_requests,
    pending_requests,
)
from quant_pipelines.storage._request_states import (
    CANCELED,
    DEFERRED,
    FAILED,
    IN_RUN_STATUSES,
    LAUNCHED,
    PENDING_STATUSES,
    QUEUED,
    REQUEST_STATUSES,
    RUNNING,
    SUCCEEDED,
    TERMINAL_STATUSES,
    InvalidRequestTransitionError,
    RequestNotFoundError,
)
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS

#: The state machine: the statuses each status may change to.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    QUEUED: (QUEUED, DEFERRED, LAUNCHED, FAILED, CANCELED),
    DEFERRED: (QUEUED, DEFERRED, LAUNCHED, FAILED, CANCELED),
    LAUNCHED: (RUNNING, DEFERRED, SUCCEEDED, FAILED, CANCELED),
    RUNNING: (RUNNING, DEFERRED, SUCCEEDED, FAILED, CANCELED),
    SUCCEEDED: (),
    FAILED: (),
    CANCELED: (),
}
_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    target: tuple(s for s in REQUEST_STATUSES if target in TRANSITIONS[s])
    for target in REQUEST_STATUSES
}
#: Fields of a request's ``progress`` (the optimizer's vocabulary; all optional). The
#: pipeline no longer writes it (the study document holds the progress); kept for old documents.
PROGRESS_FIELDS = _PROGRESS_FIELDS


def allowed_from(target: str) -> tuple[str, ...]:
    """The statuses from which a request may become ``target``."""
    return _ALLOWED_FROM[_checked(target)]


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
    db: Database, request_id: str, run_key: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Records that the sensor asked Dagster for run ``run_key``: the request is ``launched``.

    Idempotent: calling it again with the same ``run_key`` returns the document unchanged.
    The run id is recorded by :func:`record_run_id` once the run exists.

    Raises:
        RequestNotFoundError: Unknown request.
        InvalidRequestTransitionError: The request is not pending (launched or finished).
    """
    current = get_request(db, request_id)
    launched = current is not None and current["status"] in IN_RUN_STATUSES
    if launched and current.get("run_key") == run_key:
        return current
    now = now or utc_now()
    fields = {"run_key": run_key, "run_id": None, "launched_at": now}
    return _apply(db, request_id, LAUNCHED, fields, now=now, entry={"run_key": run_key})


def holds_run(run_key: str | None, run_id: str, *, retry_of: str | None = None) -> dict[str, Any]:
    """The query clause of a request that holds run ``run_id``: recorded under that id (or
    under ``retry_of``, the run that Dagster re-executed as ``run_id``), or launched under
    ``run_key`` with no run id recorded yet."""
    ids = [run_id, retry_of] if retry_of else [run_id]
    by_key = [{"run_id": None, "run_key": run_key}] if run_key else []
    return {"$or": [{"run_id": {"$in": ids}}, *by_key]}


def record_run_id(
    db: Database, request_id: str, run_key: str, run_id: str, *, now: dt.datetime | None = None
) -> dict[str, Any] | None:
    """Records the id of the run that serves a launched or running request (no status change).

    Returns:
        The document, or None when the request does not hold run ``run_key`` (any more).
    """
    return db[OPTIMIZATION_REQUESTS].find_one_and_update(
        {
            "request_id": request_id,
            "status": {"$in": list(IN_RUN_STATUSES)},
            **holds_run(run_key, run_id),
        },
        {"$set": {"run_id": run_id, "updated_at": now or utc_now()}},
        projection={"_id": 0},
        return_document=ReturnDocument.AFTER,
    )


def record_run_status(
    db: Database,
    request_id: str,
    run_key: str,
    run_id: str,
    status: str,
    *,
    error: str | None = None,
    retry_of: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """Moves the request that run ``run_id`` serves to ``running`` or an end state.

    For the run-status sensor. Applies only while the request holds that run (its ``run_key``,
    and its ``run_id`` unset or equal), and only along :data:`TRANSITIONS`: a late or repeated
    event (a run that already ended, a request re-queued for another run) changes nothing.

    Args:
        db: The project database.
        request_id: The request (the run's request tag).
        run_key: The run's request run key (tag).
        run_id: The Dagster run.
        status: ``running``, ``succeeded``, ``failed`` or ``canceled``.
        error: Why the run failed (never put secrets here).
        retry_of: The run Dagster re-executed as ``run_id`` (its ``dagster/parent_run_id``).
        now: Time of the change (default: the clock).

    Returns:
        The document after the change, or None when nothing changed.
    """
    if status not in (RUNNING, *TERMINAL_STATUSES):
        raise ValueError(f"a run cannot move its request to {status!r}")
    now = now or utc_now()
    fields: dict[str, Any] = {"status": status, "run_id": run_id, "updated_at": now}
    if status in TERMINAL_STATUSES:
        fields["finished_at"] = now
    if error is not None:
        fields["error"] = error[:2000]
    entry = {"status": status, "at": now, "run_id": run_id, **({"note": error} if error else {})}
    allowed = [s for s in IN_RUN_STATUSES if status in TRANSITIONS[s]]
    if status == RUNNING:  # a retry run starting again is news; the same run twice is not
        allowed = allowed if retry_of else [LAUNCHED]
    return db[OPTIMIZATION_REQUESTS].find_one_and_update(
        {
            "request_id": request_id,
            "status": {"$in": allowed},
            **holds_run(run_key, run_id, retry_of=retry_of),
        },
        {"$set": fields, "$push": {"history": entry}},
        projection={"_id": 0},
        return_document=ReturnDocument.AFTER,
    )


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
    now = now or utc_now()
    entry = {"until": until, **({"note": reason} if reason else {})}
    fields = {"deferred_until": until}
    return _apply(db, request_id, DEFERRED, fields, now=now, entry=entry, allowed=PENDING_STATUSES)


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
    now = now or utc_now()
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
    "CANCELED",
    "DEFERRED",
    "FAILED",
    "IN_RUN_STATUSES",
    "LAUNCHED",
    "PENDING_STATUSES",
    "PROGRESS_FIELDS",
    "QUEUED",
    "REQUEST_STATUSES",
    "RUNNING",
    "SUCCEEDED",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "CreateResult",
    "IdempotencyConflictError",
    "InvalidRequestTransitionError",
    "RequestNotFoundError",
    "active_usage",
    "allowed_from",
    "create_request",
    "get_request",
    "holds_run",
    "launched_without_run_id",
    "list_requests",
    "mark_deferred",
    "mark_launched",
    "new_request_id",
    "pending_requests",
    "record_run_id",
    "record_run_status",
    "request_fingerprint",
    "request_id_for_key",
    "update_status",
]
