"""Putting an optimization request whose run hit its wall-clock limit back in the queue.

A study run stops starting trials at its wall-clock limit and ends cleanly; when the study's
budget of trials is not spent yet, the run-status sensor moves its request from ``launched`` or
``running`` back to ``deferred`` (due at once), with ``run_id`` and ``run_key`` cleared and
``resumes`` incremented, so the request sensor launches another run that resumes the same
study by name (its progress lives in the study document).

(pymongo only; kept beside :mod:`quant_pipelines.storage.requests`, whose vocabulary it uses.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database

from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS
from quant_pipelines.storage.requests import (
    DEFERRED,
    IN_RUN_STATUSES,
    PROGRESS_FIELDS,
    TRANSITIONS,
    InvalidRequestTransitionError,
    RequestNotFoundError,
    get_request,
    holds_run,
)


def requeue_unfinished(
    db: Database,
    request_id: str,
    run_id: str,
    *,
    progress: Mapping[str, Any] | None = None,
    reason: str = "wall-clock limit reached",
    run_key: str | None = None,
    retry_of: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Moves a launched or running request of run ``run_id`` back to ``deferred``, due now.

    Atomic, and only while the request still holds the run (its ``run_id``, or ``run_key``
    with no run id recorded yet): a request that finished, failed or was taken by another run
    is left alone (and reported).

    Args:
        db: The project database.
        request_id: The request.
        run_id: The run that stopped at its limit.
        progress: Fields of ``PROGRESS_FIELDS`` to record (the progress is kept otherwise).
        reason: The history note.
        run_key: The run's request run key: only the request that launched it is re-queued.
        retry_of: The run Dagster re-executed as ``run_id``, if any.
        now: Time of the change (default: the clock).

    Returns:
        The document after the change (``status`` deferred, ``run_id`` None, ``resumes`` + 1).

    Raises:
        ValueError: Unknown progress field.
        RequestNotFoundError: Unknown request.
        InvalidRequestTransitionError: The request does not hold the run.
    """
    now = now or dt.datetime.now(dt.UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    fields: dict[str, Any] = {
        "status": DEFERRED,
        "deferred_until": now,
        "run_id": None,
        "run_key": None,
        "updated_at": now,
    }
    for key, value in (progress or {}).items():
        if key not in PROGRESS_FIELDS:
            raise ValueError(f"unknown progress field {key!r}; expected {PROGRESS_FIELDS}")
        fields[f"progress.{key}"] = value
    current = get_request(db, request_id)
    if current is None:
        raise RequestNotFoundError(f"no optimization request with id {request_id!r}")
    if progress and current.get("progress") is None:  # cannot $set "progress.x" on null
        fields = {k: v for k, v in fields.items() if not k.startswith("progress.")}
        fields["progress"] = dict(progress)
    entry = {"status": DEFERRED, "at": now, "run_id": run_id, "until": now, "note": reason}
    updated = db[OPTIMIZATION_REQUESTS].find_one_and_update(
        {
            "request_id": request_id,
            "status": {"$in": [s for s in IN_RUN_STATUSES if DEFERRED in TRANSITIONS[s]]},
            **holds_run(run_key, run_id, retry_of=retry_of),
        },
        {"$set": fields, "$inc": {"resumes": 1}, "$push": {"history": entry}},
        projection={"_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        again = get_request(db, request_id) or {}
        raise InvalidRequestTransitionError(
            f"request {request_id} is {again.get('status')} (run {again.get('run_id')}); "
            f"only a request launched or running under run {run_id} can be re-queued"
        )
    return updated
