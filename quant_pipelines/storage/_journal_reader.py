"""The reading half of the MongoDB journal backend: incremental reads from the last number read.

:class:`JournalReader` holds what a backend has handed out to its ``JournalStorage`` and reads
only the documents after the last one it read (a range on the unique ``log_number`` index), so
each document crosses the wire once per process however long the study runs.
:class:`~quant_pipelines.storage._journal_backend.MongoJournalBackend` adds the writes; a write
of its own that a read meets while in flight (:class:`InFlight`) hands out only the logs not
handed out yet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from quant_pipelines.storage._journal_io import InFlight, retry, state_changes

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_LOG_FIELDS = {"_id": 1, "log_number": 1, "logs": 1}


class JournalReader:
    """The logs of one journal collection as one process reads them (module doc).

    Args:
        coll: The journal collection.
        retry_timeout: Seconds to keep retrying an operation on connection errors.
        read_interval: Seconds during which a read may be answered from the logs already
            fetched instead of querying MongoDB (0 = always query). The logs a process has
            written itself are always seen at once.
    """

    def __init__(self, coll: Collection, *, retry_timeout: float, read_interval: float) -> None:
        self._coll = coll
        self.retry_timeout = retry_timeout
        self.read_interval = read_interval
        # Lock order: _write_lock (one document in flight), then _lock (the reader's state).
        # A write holds _write_lock across its round trip and _lock only between them, so
        # reads and deferred logs never wait on a background write.
        self._write_lock = threading.Lock()
        self._lock = threading.RLock()
        self._cache: list[dict[str, Any]] = []  # logs handed out from index _start on
        self._start = 0
        self._db_next = 0  # next document number to read from MongoDB
        self._last_fetch = float("-inf")
        self._fresh = False  # nothing can have been missed since our own last write
        self._in_flight: InFlight | None = None
        self._unlanded: set[int] = set()  # trials whose deferred state change has not landed
        #: Trials another process finished before this one's deferred result landed.
        self.lost_races: list[int] = []

    def _write_deferred(self, new: list[str] | None = None) -> None:
        """Writes the logs handed out but not written yet (the writer's; none here)."""

    @property
    def name(self) -> str:
        """Name of the journal collection."""
        return self._coll.name

    @property
    def database(self) -> Database:
        """The database of the journal collection."""
        return self._coll.database

    def _retry(self, op: Callable[[], _T]) -> _T:
        return retry(op, self.retry_timeout, f"journal {self.name}")

    def _fetch(self) -> None:
        """Hands out the logs after ``_db_next``, stopping at the first missing number.

        Reads only the documents it has not read (``log_number >= _db_next``, on the unique
        index). Of a document of ours still in flight, only the logs not handed out yet are.
        """
        docs = self._retry(
            lambda: list(
                self._coll.find({"log_number": {"$gte": self._db_next}}, _LOG_FIELDS)
                .sort("log_number", ASCENDING)
                .batch_size(10_000)
            )
        )
        for doc in docs:
            if doc["log_number"] != self._db_next:
                break  # a gap can only be a write that is not visible yet
            mine = self._in_flight
            if mine is not None and doc["_id"] == mine.oid:
                self._cache.extend(mine.new)
                mine.seen = True
                self._unlanded -= mine.finishes
            else:
                logs = json.loads(doc["logs"])
                for trial_id in state_changes(logs, self._unlanded) if self._unlanded else ():
                    self._lost_race(trial_id)
                self._cache.extend(logs)
            self._db_next += 1
        self._last_fetch = time.monotonic()

    def _lost_race(self, trial_id: int) -> None:
        """Another process changed the state of a trial whose deferred state change has not
        landed: this reader replayed its own first, every other reader replays the other's."""
        self._unlanded.discard(trial_id)
        self.lost_races.append(trial_id)
        _log.error(
            "journal %s: trial id %s was finished elsewhere (its lease had expired) before "
            "this process's result was written; the journal keeps the other state, this "
            "process's view of the trial is stale",
            self.name,
            trial_id,
        )

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """The logs from position ``log_number_from`` on (Optuna counts logs, not documents).

        Positions are this reader's: logs it deferred come right after the logs it had read.
        """
        with self._lock:
            restart = log_number_from < self._start
        if restart:  # a reader starting over: read from scratch, once our logs are written
            with self._write_lock:
                self._write_deferred()
                with self._lock:
                    self._cache, self._db_next = [], 0
                    self._fetch()
                    self._cache, self._start = self._cache[log_number_from:], log_number_from
        with self._lock:
            stale = time.monotonic() - self._last_fetch >= self.read_interval
            if not self._fresh and stale:
                self._fetch()
            self._fresh = False
            self._cache = self._cache[log_number_from - self._start :]
            self._start = log_number_from
            return list(self._cache)
