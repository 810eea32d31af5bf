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

Reads are incremental: a backend remembers the next number it has not read and asks only for
the documents from there (a range on the unique index), so each document crosses the wire
once per process however long the study runs; logs already handed out are kept only from the
position JournalStorage last asked for.

Every document carries a client ``_id``: after a network error, the writer looks for its own
``_id`` to learn whether the insert landed, so a retried append never duplicates a log.
Transient connection errors are retried for ``retry_timeout`` seconds, so a MongoDB restart
shorter than that is invisible to the study. A write of logs already handed out (deferred
ones) may run on a background thread (:meth:`MongoJournalBackend.flush` with ``wait=False``):
reads meanwhile hand out only the new logs of that document when they meet it.

Only Optuna's public backend contract is used (``read_logs`` / ``append_logs``) plus the
journal's log format, which is persisted and therefore stable: a log is a JSON object with an
``op_code`` and, for trial operations, a ``trial_id`` (pinned by ``test_journal_public_api``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from optuna.storages.journal import BaseJournalBackend
from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from quant_pipelines.storage._journal_io import (
    FINISHED_STATES,
    SET_STATE_OP,
    TRIAL_LOCAL_OPS,
    BackgroundWriter,
    InFlight,
    insert_at,
    retry,
    transient,
)
from quant_pipelines.storage._journal_reader import JournalReader
from quant_pipelines.storage.collections import OPTUNA_JOURNAL

__all__ = ["TRIAL_LOCAL_OPS", "MongoJournalBackend", "retry", "transient"]

_MAX_DEFERRED = 1000


class MongoJournalBackend(JournalReader, BaseJournalBackend):
    """Optuna ``BaseJournalBackend`` storing each write as one MongoDB document (module doc).

    One backend serves one ``JournalStorage``: it remembers which logs it has handed out.

    Args:
        db: The project database.
        collection: Journal collection; one collection is one journal (one log sequence).
        retry_timeout: Seconds to keep retrying an operation on connection errors.
        read_interval: Seconds during which a read may be answered from the logs already
            fetched instead of querying MongoDB (0 = always query). The logs a process has
            written itself are always seen at once.
        flush_delay: Seconds a deferred log waits before ``flush(wait=False)`` writes it in
            the background; a write in between (the trial's next creation) takes it along.
    """

    def __init__(
        self,
        db: Database,
        *,
        collection: str = OPTUNA_JOURNAL,
        retry_timeout: float = 30.0,
        read_interval: float = 0.0,
        flush_delay: float = 0.0,
    ) -> None:
        super().__init__(db[collection], retry_timeout=retry_timeout, read_interval=read_interval)
        self.flush_delay = flush_delay
        self._deferred: list[str] = []  # JSON of logs handed out but not written yet
        self._deferred_since = 0.0  # monotonic time the oldest of them was deferred
        self._deferred_finishes: set[int] = set()  # trials whose state change is deferred
        self._held: set[int] = set()  # trials whose trial-local logs are deferred
        self._writer: BackgroundWriter | None = None  # writes deferred logs on request
        self._retry(
            lambda: self._coll.create_indexes(
                [IndexModel([("log_number", ASCENDING)], unique=True, name="uniq_log_number")]
            )
        )

    def hold(self, trial_id: int) -> None:
        """Defers the trial-local logs of ``trial_id`` (a trial this process runs) from now on.

        Its params, intermediate values, attributes and final state change are handed out at
        once and written with the next log that is not deferred (usually the next trial's
        creation), at the next :meth:`flush`, or when :data:`_MAX_DEFERRED` logs wait. Their
        order relative to other processes' logs does not change what any replay computes, as
        long as no other process changes the trial's state meanwhile (only a reaper does, once
        the trial's lease expired: :attr:`lost_races`).
        """
        with self._lock:
            self._held.add(trial_id)

    def release(self, trial_id: int) -> None:
        """Stops deferring the logs of ``trial_id`` (the logs already deferred still wait)."""
        with self._lock:
            self._held.discard(trial_id)

    def _deferrable(self, log: dict[str, Any]) -> bool:
        op = log.get("op_code")
        if op == SET_STATE_OP:
            return log.get("trial_id") in self._held and log.get("state") in FINISHED_STATES
        return op in TRIAL_LOCAL_OPS and log.get("trial_id") in self._held

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Appends logs, after any deferred ones, as one document at the next free number.

        Logs of a held trial (:meth:`hold`) are deferred instead. The insert is tried first at
        the number after the last document read; the read that JournalStorage does after
        every write is then answered from memory, because nothing can lie between the
        documents read and the one just written.
        """
        with self._lock:
            deferrable = bool(self._held and logs and all(map(self._deferrable, logs)))
        if deferrable:
            self.defer(logs)
            return
        texts = [json.dumps(log) for log in logs]
        with self._write_lock:
            self._write_deferred(texts)
            with self._lock:
                self._fresh = True

    def defer(self, logs: list[dict[str, Any]]) -> None:
        """Hands logs out now and writes them with the next append or :meth:`flush`.

        Only for logs that touch a running trial owned by this process (its params,
        intermediate values, attributes and final state, see :meth:`hold`).
        """
        with self._lock:
            if not self._deferred:
                self._deferred_since = time.monotonic()
            for log in logs:
                text = json.dumps(log)
                self._cache.append(json.loads(text))
                self._deferred.append(text)
                if log.get("op_code") == SET_STATE_OP:
                    self._deferred_finishes.add(log["trial_id"])
                    self._unlanded.add(log["trial_id"])
            self._fresh = True
            full = len(self._deferred) >= _MAX_DEFERRED
        if full:
            self.flush()

    def flush(self, *, wait: bool = True) -> None:
        """Writes the deferred logs.

        Args:
            wait: Return once they are written. False returns at once and has a background
                thread write them once the oldest has waited ``flush_delay`` seconds, unless a
                write takes them along before; the next write (or ``flush()``) waits for a
                background write under way, reads and deferred logs do not.
        """
        if wait:
            with self._write_lock:
                self._write_deferred()
            return
        with self._lock:
            if not self._deferred:
                return
            if self._writer is None:
                self._writer = BackgroundWriter(self)
            writer, due = self._writer, self._deferred_since + self.flush_delay
        writer.kick(due)

    def flush_due(self) -> float | None:
        """Writes the deferred logs if the oldest has waited ``flush_delay`` seconds.

        Returns:
            When (monotonic) to call again if some wait but are not due yet, else None.
        """
        with self._lock:
            if not self._deferred:
                return None
            due = self._deferred_since + self.flush_delay
        if due > time.monotonic():
            return due
        self.flush()
        return None

    def close(self) -> None:
        """Writes the deferred logs and stops the background writer (a later
        ``flush(wait=False)`` starts a new one)."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
        self.flush()

    def _write_deferred(self, new: list[str] | None = None) -> None:
        """Writes the deferred logs, then ``new`` ones, in one document (``_write_lock``
        held); deferred logs not written are kept for the next write."""
        with self._lock:
            texts, self._deferred = self._deferred, []
            finishes, self._deferred_finishes = self._deferred_finishes, set()
            since = self._deferred_since
        try:
            self._write(texts, new or [], finishes)
        except BaseException:
            with self._lock:
                self._deferred[:0] = texts
                self._deferred_finishes |= finishes
                self._deferred_since = since if texts else self._deferred_since
            raise

    def _write(self, handed_out: list[str], new: list[str], finishes: set[int]) -> None:
        """Writes one document with the logs already handed out, then the new ones, which are
        handed out once it has landed (after the logs of anyone who wrote first).

        Called with ``_write_lock`` held; ``_lock`` is taken only between round trips.
        """
        if not handed_out and not new:
            return
        oid = uuid.uuid4().hex
        text = "[" + ",".join(handed_out + new) + "]"
        mine = InFlight(oid, [json.loads(t) for t in new], finishes)  # new: replayed from JSON
        with self._lock:
            self._in_flight = mine
        try:
            while True:
                with self._lock:
                    number = self._db_next
                doc = {"_id": oid, "log_number": number, "logs": text}
                if insert_at(self._coll, doc, self.retry_timeout):
                    break
                with self._lock:
                    self._fetch()  # someone else took the number: read what we missed
            with self._lock:
                if not mine.seen:  # nothing can lie between the logs read and ours
                    self._db_next = number + 1
                    self._cache.extend(mine.new)
                    self._unlanded -= finishes
        finally:
            with self._lock:
                self._in_flight = None
