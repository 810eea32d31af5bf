"""Optuna's journal on MongoDB: a process-safe ``BaseJournalBackend`` over one collection.

Documents: each write is one document ``{_id, log_number, logs}`` in one collection
(``optuna_journal`` by default), where ``logs`` is the JSON text of the Optuna logs appended
together (usually one; a trial's params, intermediate values, attributes and final state when
they are batched, see :meth:`MongoJournalBackend.hold`). JSON text replays exactly as Optuna's
file backend does, and one document per batch keeps the write cost per trial flat.

Numbering (insert-and-retry): ``log_number`` is ONE global, gap-free sequence 0, 1, 2, ... per
collection, shared by every study in it, like one RDB file holds many studies. A writer inserts
at ``last number it has read + 1``; the unique index on ``log_number`` rejects a taken number
(E11000), and the writer then reads the documents it missed and retries. A number is only ever
written right after an existing one, so the sequence has no gaps even when a writer dies
mid-way (an atomic counter would leave a hole for every crash between the increment and the
insert, and a reader could not tell a hole from a slow writer). Readers stop at a gap anyway.
A separate journal needs a separate collection (the unique index is on ``log_number`` alone).

Every document carries a client ``_id``: after a network error, the writer looks for its own
``_id`` to learn whether the insert landed, so a retried append never duplicates a log.
Transient connection errors are retried for ``retry_timeout`` seconds, so a MongoDB restart
shorter than that is invisible to the study.

Only Optuna's public backend contract is used (``read_logs`` / ``append_logs``) plus the
journal's log format, which is persisted and therefore stable: a log is a JSON object with an
``op_code`` and, for trial operations, a ``trial_id`` (pinned by ``test_journal_public_api``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from optuna.storages.journal import BaseJournalBackend
from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from quant_pipelines.storage.collections import OPTUNA_JOURNAL

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
#: Server error codes of a primary stepping down or shutting down: safe to retry.
_TRANSIENT_CODES = frozenset({91, 189, 10107, 11600, 11602, 13435, 13436})
#: Journal op codes that touch one trial only (the persisted journal format):
#: SET_TRIAL_PARAM, SET_TRIAL_INTERMEDIATE_VALUE, SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR.
TRIAL_LOCAL_OPS = frozenset({5, 7, 8, 9})
_LOG_FIELDS = {"_id": 0, "log_number": 1, "logs": 1}
_MAX_DEFERRED = 1000


def transient(exc: Exception) -> bool:
    """Whether a pymongo error is a connection loss or a primary change (worth retrying)."""
    return isinstance(exc, ConnectionFailure) or (
        isinstance(exc, OperationFailure) and exc.code in _TRANSIENT_CODES
    )


def retry(op: Callable[[], _T], timeout: float, what: str) -> _T:
    """Runs ``op``, retrying transient errors with backoff for ``timeout`` seconds.

    Args:
        op: The MongoDB operation.
        timeout: Seconds to keep retrying.
        what: Named in the warning logged at each retry.

    Returns:
        What ``op`` returns.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return op()
        except (ConnectionFailure, OperationFailure) as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise
            _log.warning("%s: %s; retrying in %.2fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


class MongoJournalBackend(BaseJournalBackend):
    """Optuna ``BaseJournalBackend`` storing each write as one MongoDB document (module doc).

    One backend serves one ``JournalStorage``: it remembers which logs it has handed out.

    Args:
        db: The project database.
        collection: Journal collection; one collection is one journal (one log sequence).
        retry_timeout: Seconds to keep retrying an operation on connection errors.
        read_interval: Seconds during which a read may be answered from the logs already
            fetched instead of querying MongoDB (0 = always query). The logs a process has
            written itself are always seen at once.
    """

    def __init__(
        self,
        db: Database,
        *,
        collection: str = OPTUNA_JOURNAL,
        retry_timeout: float = 30.0,
        read_interval: float = 0.0,
    ) -> None:
        self._coll = db[collection]
        self.retry_timeout = retry_timeout
        self.read_interval = read_interval
        self._lock = threading.RLock()
        self._cache: list[dict[str, Any]] = []  # logs handed out from index _start on
        self._start = 0
        self._db_next = 0  # next document number to read from MongoDB
        self._deferred: list[str] = []  # JSON of logs handed out but not written yet
        self._held: set[int] = set()  # trials whose trial-local logs are deferred
        self._last_fetch = float("-inf")
        self._fresh = False  # nothing can have been missed since our own last write
        self._retry(
            lambda: self._coll.create_indexes(
                [IndexModel([("log_number", ASCENDING)], unique=True, name="uniq_log_number")]
            )
        )

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
        """Hands out the logs after ``_db_next``, stopping at the first missing number."""
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
            self._cache.extend(json.loads(doc["logs"]))
            self._db_next += 1
        self._last_fetch = time.monotonic()

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """The logs from position ``log_number_from`` on (Optuna counts logs, not documents).

        Positions are this reader's: logs it deferred come right after the logs it had read.
        """
        with self._lock:
            if log_number_from < self._start:  # a reader starting over: read from scratch
                self.flush()
                self._cache, self._db_next = [], 0
                self._fetch()
                self._cache, self._start = self._cache[log_number_from:], log_number_from
            stale = time.monotonic() - self._last_fetch >= self.read_interval
            if not self._fresh and stale:
                self._fetch()
            self._fresh = False
            self._cache = self._cache[log_number_from - self._start :]
            self._start = log_number_from
            return list(self._cache)

    def hold(self, trial_id: int) -> None:
        """Defers the trial-local logs of ``trial_id`` (a trial this process runs) from now on.

        Its params, intermediate values and attributes are handed out at once and written
        with the next log that is not deferred (usually the trial's state change), at the
        next :meth:`flush`, or when :data:`_MAX_DEFERRED` logs wait. Their order relative to
        other processes' logs does not change what any replay computes.
        """
        with self._lock:
            self._held.add(trial_id)

    def release(self, trial_id: int) -> None:
        """Stops deferring the logs of ``trial_id`` (the logs already deferred still wait)."""
        with self._lock:
            self._held.discard(trial_id)

    def _deferrable(self, log: dict[str, Any]) -> bool:
        return log.get("op_code") in TRIAL_LOCAL_OPS and log.get("trial_id") in self._held

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Appends logs, after any deferred ones, as one document at the next free number.

        Logs of a held trial (:meth:`hold`) are deferred instead. The insert is tried first at
        the number after the last document read; the read that JournalStorage does after
        every write is then answered from memory, because nothing can lie between the
        documents read and the one just written.
        """
        with self._lock:
            if self._held and logs and all(self._deferrable(log) for log in logs):
                self.defer(logs)
                return
            texts = [json.dumps(log) for log in logs]
            self._write(self._deferred, texts)
            self._deferred = []
            self._fresh = True

    def defer(self, logs: list[dict[str, Any]]) -> None:
        """Hands logs out now and writes them with the next append or :meth:`flush`.

        Only for logs that touch a running trial owned by this process (its params,
        intermediate values and attributes): their order relative to other processes' logs
        does not change what any replay computes.
        """
        with self._lock:
            for log in logs:
                text = json.dumps(log)
                self._cache.append(json.loads(text))
                self._deferred.append(text)
            self._fresh = True
            if len(self._deferred) >= _MAX_DEFERRED:
                self.flush()

    def flush(self) -> None:
        """Writes the deferred logs."""
        with self._lock:
            if self._deferred:
                self._write(self._deferred, [])
                self._deferred = []

    def _write(self, handed_out: list[str], new: list[str]) -> None:
        """Writes one document with the logs already handed out, then the new ones, which are
        handed out once it has landed (after the logs of anyone who wrote first)."""
        if not handed_out and not new:
            return
        oid = uuid.uuid4().hex
        text = "[" + ",".join(handed_out + new) + "]"
        while True:
            doc = {"_id": oid, "log_number": self._db_next, "logs": text}
            if self._insert(doc):
                break
            self._fetch()
        self._db_next += 1
        # Replay our own logs from their JSON too, exactly as other processes do.
        self._cache.extend(json.loads(t) for t in new)

    def _insert(self, doc: dict[str, Any]) -> bool:
        """Inserts ``doc``; False when its number is taken (by someone else)."""
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.05
        while True:
            try:
                self._coll.insert_one(doc)
                return True
            except DuplicateKeyError:
                return self._landed(doc)
            except (ConnectionFailure, OperationFailure) as exc:
                if not transient(exc) or time.monotonic() + delay > deadline:
                    raise
                _log.warning("journal %s append: %s; retrying in %.2fs", self.name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                if self._landed(doc):  # the lost answer was a success
                    return True

    def _landed(self, doc: dict[str, Any]) -> bool:
        """Whether our document is in the journal (at its number)."""
        found = self._retry(lambda: self._coll.find_one({"_id": doc["_id"]}, {"log_number": 1}))
        return found is not None and found["log_number"] == doc["log_number"]
