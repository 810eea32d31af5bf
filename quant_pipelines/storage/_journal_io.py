"""The journal's I/O: retries across connection losses and primary changes, the at-most-once
insert of a journal document, and the daemon threads that stamp leases and write deferred logs."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pymongo.collection import Collection
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    WriteConcernError,
)

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
#: Server error codes of a primary stepping down or shutting down: safe to retry.
_TRANSIENT_CODES = frozenset({91, 189, 10107, 11600, 11602, 13435, 13436})
_DUPLICATE_KEY = 11000
#: Journal op codes that touch one trial only (the persisted journal format):
#: SET_TRIAL_PARAM, SET_TRIAL_INTERMEDIATE_VALUE, SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR.
TRIAL_LOCAL_OPS = frozenset({5, 7, 8, 9})
#: SET_TRIAL_STATE_VALUES, and the finished states it may carry (COMPLETE, PRUNED, FAIL).
SET_STATE_OP = 6
FINISHED_STATES = frozenset({1, 2, 3})
#: Seconds an idle background writer sleeps between checks that its owner still exists.
_WRITER_IDLE = 5.0


class InFlight:
    """A journal document being inserted: a read that meets it hands out only its new logs.

    Attributes:
        oid: Its ``_id``.
        new: Its logs not handed out yet (the others were, when they were deferred).
        finishes: The trials whose deferred state change it carries.
        seen: A read took it (and handed ``new`` out).
    """

    __slots__ = ("finishes", "new", "oid", "seen")

    def __init__(self, oid: str, new: list[dict[str, Any]], finishes: set[int]) -> None:
        self.oid = oid
        self.new = new
        self.finishes = finishes
        self.seen = False


def state_changes(logs: list[dict[str, Any]], trials: set[int]) -> list[int]:
    """The trials of ``trials`` whose state one of ``logs`` changes."""
    return [
        log["trial_id"]
        for log in logs
        if log.get("op_code") == SET_STATE_OP and log.get("trial_id") in trials
    ]


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


def insert_at(coll: Collection, doc: dict[str, Any], timeout: float) -> bool:
    """Inserts a journal document at its ``log_number``, at most once.

    Transient errors are retried for ``timeout`` seconds; after each, the document's client
    ``_id`` is looked up, so an insert whose answer was lost is not repeated.

    Returns:
        True once the document is in; False when its number is taken by another document.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    what = f"journal {coll.name}"
    while True:
        try:
            _insert_command(coll, doc)
            return True
        except DuplicateKeyError:
            return _landed(coll, doc, timeout, what)
        except (ConnectionFailure, OperationFailure) as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise
            _log.warning("%s append: %s; retrying in %.2fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            if _landed(coll, doc, timeout, what):  # the lost answer was a success
                return True


def _insert_command(coll: Collection, doc: dict[str, Any]) -> None:
    """One ``insert`` command, sent as a plain command rather than a retryable write.

    The journal has its own idempotency (the ``_id`` looked up after a lost answer), so it
    needs no server-side record of retryable writes; a server that prunes those records on
    every write (the embedded one scans all of the last 30 minutes') would otherwise make
    each append dearer as a study runs.

    Raises:
        DuplicateKeyError: The number (or the ``_id``) is taken.
        WriteConcernError: The write concern was not satisfied.
    """
    cmd: dict[str, Any] = {"insert": coll.name, "documents": [doc], "ordered": True}
    concern = coll.write_concern.document
    if concern:
        cmd["writeConcern"] = concern
    reply = coll.database.command(cmd)
    errors = reply.get("writeErrors")
    if errors:
        err = errors[0]
        cls = DuplicateKeyError if err.get("code") == _DUPLICATE_KEY else OperationFailure
        raise cls(err.get("errmsg", "insert failed"), err.get("code"), err)
    if "writeConcernError" in reply:
        wce = reply["writeConcernError"]
        raise WriteConcernError(wce.get("errmsg", "write concern failed"), wce.get("code"), wce)


def _landed(coll: Collection, doc: dict[str, Any], timeout: float, what: str) -> bool:
    """Whether ``doc`` is in the journal, at its number."""
    found = retry(lambda: coll.find_one({"_id": doc["_id"]}, {"log_number": 1}), timeout, what)
    return found is not None and found["log_number"] == doc["log_number"]


class _DueFlusher(Protocol):
    def flush_due(self) -> float | None: ...


class _Stamper(Protocol):
    def stamp(self) -> None: ...


class BackgroundWriter:
    """A daemon thread calling ``owner.flush_due()`` at the times it is asked for.

    ``flush_due`` writes what is due and returns when to call it again (None: when next
    asked). The thread holds ``owner`` weakly and ends when the owner is collected or
    :meth:`stop` is called.

    Args:
        owner: What to flush.
        name: The thread's name.
    """

    def __init__(self, owner: _DueFlusher, *, name: str = "optuna-journal-writer") -> None:
        self._ref = weakref.ref(owner)
        self._cond = threading.Condition()
        self._due: float | None = None  # monotonic time of the next call
        self._stopped = False
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def kick(self, at: float = 0.0) -> None:
        """Asks for a call at monotonic time ``at`` (at once by default); returns at once."""
        with self._cond:
            if self._due is None or at < self._due:
                self._due = at
                self._cond.notify()

    def stop(self) -> None:
        """Ends the thread (after the flush under way, if any)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _wait(self) -> bool:
        """Waits until a call is due; False when the thread should end."""
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                if self._due is not None and self._due <= now:
                    self._due = None
                    return True
                wait = _WRITER_IDLE if self._due is None else min(self._due - now, _WRITER_IDLE)
                if not self._cond.wait(wait) and self._ref() is None:
                    return False
            return False

    def _loop(self) -> None:
        while self._wait():
            owner = self._ref()
            if owner is None:
                return
            try:
                again = owner.flush_due()
            except Exception as exc:  # the logs wait for the next write
                _log.warning("deferred journal logs not written yet: %s", exc)
                again = None
            del owner
            if again is not None:
                self.kick(again)


def start_lease_thread(owner: _Stamper, interval: float) -> threading.Event:
    """Starts a daemon thread calling ``owner.stamp()`` every ``interval`` seconds.

    The thread holds ``owner`` weakly: it ends when the owner is collected or the returned
    event is set.
    """
    stop = threading.Event()
    threading.Thread(
        target=_lease_loop,
        args=(weakref.ref(owner), stop, interval),
        name="optuna-leases",
        daemon=True,
    ).start()
    return stop


def _lease_loop(ref: weakref.ReferenceType[Any], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        owner = ref()
        if owner is None:
            return
        try:
            owner.stamp()
        except Exception as exc:  # a missed stamp only shortens the lease
            _log.warning("trial leases not stamped: %s", exc)
        del owner
