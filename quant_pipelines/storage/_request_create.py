"""Recording a new optimization request (the API's only write): an idempotent upsert on a
request id chosen before the write (see :mod:`quant_pipelines.storage.requests`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from quant_pipelines._utils.time import utc_now
from quant_pipelines.storage._request_states import QUEUED, RequestNotFoundError
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS

_log = logging.getLogger("quant_pipelines.storage.requests")


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
    now = now or utc_now()
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
