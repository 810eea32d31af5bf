"""Per-key quotas on optimization requests: how much one API key may have queued at once.

Counted from ``optimization_requests`` by ``requested_by`` (the key's name): at most
``max_active_requests`` queued, deferred or running requests, asking for at most
``max_queued_trials`` trials in total. Past either, the answer is 429 with ``Retry-After`` and
nothing is written. The check and the insert run under a per-key lock, so concurrent requests
of one key to one API process cannot overshoot (several API processes could, by at most one
request each).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import HTTPException
from pymongo.database import Database

from quant_pipelines.storage.requests import active_usage


@dataclass(frozen=True)
class Quotas:
    """The limits of one key.

    Attributes:
        max_active_requests: Queued, deferred or running requests at once.
        max_queued_trials: Trials those requests ask for, in total.
        retry_after_s: The ``Retry-After`` of a 429 answer, in seconds.
    """

    max_active_requests: int
    max_queued_trials: int
    retry_after_s: int = 60


class QuotaGuard:
    """Checks :class:`Quotas` before an insert, serialising the requests of each key.

    Args:
        quotas: The limits.
    """

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, requester: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(requester, threading.Lock())

    @contextlib.contextmanager
    def reserve(self, db: Database, requester: str, n_trials: int) -> Iterator[None]:
        """Holds the key's lock while its new request is checked and written.

        Args:
            db: The project database.
            requester: The key's name.
            n_trials: Trials the new request asks for.

        Raises:
            HTTPException: 429 with ``Retry-After`` when the request would exceed a quota.
        """
        with self._lock(requester):
            active, trials = active_usage(db, requester)
            q = self.quotas
            problem = None
            if active + 1 > q.max_active_requests:
                problem = (
                    f"API key {requester!r} already has {active} queued or running optimization "
                    f"requests (quota {q.max_active_requests})"
                )
            elif trials + n_trials > q.max_queued_trials:
                problem = (
                    f"API key {requester!r} has {trials} trials queued or running; {n_trials} "
                    f"more would exceed its quota of {q.max_queued_trials}"
                )
            if problem is not None:
                raise HTTPException(
                    429,
                    detail=problem + "; retry when some have finished",
                    headers={"Retry-After": str(q.retry_after_s)},
                )
            yield
