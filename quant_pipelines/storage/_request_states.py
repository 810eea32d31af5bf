"""The vocabulary of optimization requests: statuses and errors (see
:mod:`quant_pipelines.storage.requests` for the state machine and its transitions)."""

from __future__ import annotations

QUEUED, DEFERRED, LAUNCHED, RUNNING = "queued", "deferred", "launched", "running"
SUCCEEDED, FAILED, CANCELED = "succeeded", "failed", "canceled"
#: Every status a request can have, in lifecycle order.
REQUEST_STATUSES: tuple[str, ...] = (
    QUEUED,
    DEFERRED,
    LAUNCHED,
    RUNNING,
    SUCCEEDED,
    FAILED,
    CANCELED,
)
#: Statuses waiting for a run (what the sensor looks at).
PENDING_STATUSES: tuple[str, ...] = (QUEUED, DEFERRED)
#: Statuses of a request that holds a Dagster run.
IN_RUN_STATUSES: tuple[str, ...] = (LAUNCHED, RUNNING)
#: Statuses a request never leaves.
TERMINAL_STATUSES: tuple[str, ...] = (SUCCEEDED, FAILED, CANCELED)


class RequestNotFoundError(LookupError):
    """No optimization request has the given id."""


class InvalidRequestTransitionError(ValueError):
    """The status change is not allowed from the request's current status."""
