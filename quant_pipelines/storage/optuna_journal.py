"""Optuna's journal on MongoDB: a process-safe log backend, plus trial leases (heartbeats).

Documents: each write is one document ``{_id, log_number, logs}`` in one collection
(``optuna_journal`` by default), where ``logs`` is the JSON text of the Optuna logs appended
together (usually one; a trial's params, intermediate values, attributes and final state when
they are batched, see ``defer_trial_logs``). JSON text replays exactly as Optuna's file backend
does, and one document per batch keeps the write cost per trial flat.

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

Leases: JournalStorage has no heartbeat, so :class:`MongoJournalStorage` leases running
trials: each worker stamps ``<collection>_leases`` (one document per running trial) every
``heartbeat_interval`` seconds with the *server's* clock (``$currentDate``), and staleness is judged
against the server's clock (``hello.localTime``), so worker clocks do not matter once a trial
has its first stamp. Before a new trial is created in a study, RUNNING trials whose lease is
older than ``grace_period`` are failed and handed to ``RetryHeartbeatStaleTrialCallback``,
which re-queues them with the same parameters. A lease also names its holder's machine and
process, so a trial whose holder was a process of this machine that no longer runs is stale at
once. When a run ends, :meth:`MongoJournalStorage.settle` fails the study's orphaned trials
(those of workers that died) instead of leaving them RUNNING until a later run.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import optuna
import psutil
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from quant_pipelines.storage.collections import OPTUNA_JOURNAL

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_DUPLICATE_KEY = 11000
#: Server error codes of a primary stepping down or shutting down: safe to retry.
_TRANSIENT_CODES = frozenset({91, 189, 10107, 11600, 11602, 13435, 13436})

StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]
#: Journal operations that touch one trial only: SET_TRIAL_PARAM, SET_TRIAL_INTERMEDIATE_VALUE,
#: SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR.
_TRIAL_LOCAL_OPS = frozenset({5, 7, 8, 9})
_LOG_FIELDS = {"_id": 0, "log_number": 1, "logs": 1}
_MAX_DEFERRED = 1000


def _transient(exc: Exception) -> bool:
    return isinstance(exc, ConnectionFailure) or (
        isinstance(exc, OperationFailure) and exc.code in _TRANSIENT_CODES
    )


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
        self.leases = db[f"{collection}_leases"]
        self.retry_timeout = retry_timeout
        self.read_interval = read_interval
        self._lock = threading.RLock()
        self._cache: list[dict[str, Any]] = []  # logs handed out from index _start on
        self._start = 0
        self._db_next = 0  # next document number to read from MongoDB
        self._deferred: list[str] = []  # JSON of logs handed out but not written yet
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

    def _retry(self, op: Callable[[], _T]) -> _T:
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.05
        while True:
            try:
                return op()
            except (ConnectionFailure, OperationFailure) as exc:
                if not _transient(exc) or time.monotonic() + delay > deadline:
                    raise
                _log.warning("journal %s: %s; retrying in %.2fs", self.name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

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

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Appends logs, after any deferred ones, as one document at the next free number.

        The insert is tried first at the number after the last document read; the read that
        JournalStorage does after every write is then answered from memory, because nothing
        can lie between the documents read and the one just written.
        """
        with self._lock:
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
                if not _transient(exc) or time.monotonic() + delay > deadline:
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

    # Leases ------------------------------------------------------------------------------

    def stamp_leases(self, trials: dict[int, int], worker: str, *, node: str | None = None) -> None:
        """Sets the leases of running trials (trial id -> study id) to the server's time.

        Args:
            trials: Trial id -> study id.
            worker: The holder ("host:pid:id").
            node: The holder's machine and PID namespace (see :func:`_node`); with it, the
                lease also stores this process's ``pid``.
        """
        holder: dict[str, Any] = {"worker": worker}
        if node is not None:
            holder.update(node=node, pid=os.getpid())
        if trials:
            self.leases.bulk_write(
                [
                    UpdateOne(
                        {"_id": tid},
                        {"$currentDate": {"beat": True}, "$set": {"study": sid, **holder}},
                        upsert=True,
                    )
                    for tid, sid in trials.items()
                ],
                ordered=False,
            )

    def expired_leases(
        self,
        trial_ids: list[int],
        grace_period: float,
        *,
        dead: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[set[int], set[int]]:
        """Of ``trial_ids``, those whose lease is older than ``grace_period`` by the server's
        clock (or whose lease document ``dead`` says is held by a dead process), and those
        with no lease at all."""

        def query() -> tuple[set[int], set[int]]:
            now = _utc(self._coll.database.command("hello")["localTime"])
            cutoff = now - dt.timedelta(seconds=grace_period)
            seen: set[int] = set()
            old: set[int] = set()
            for doc in self.leases.find({"_id": {"$in": trial_ids}}):
                seen.add(doc["_id"])
                if _utc(doc["beat"]) < cutoff or (dead is not None and dead(doc)):
                    old.add(doc["_id"])
            return old, set(trial_ids) - seen

        return self._retry(query)

    def drop_leases(self, study_id: int, keep: list[int]) -> None:
        """Deletes the leases of a study's trials that no longer run."""
        self._retry(lambda: self.leases.delete_many({"study": study_id, "_id": {"$nin": keep}}))


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _node() -> str | None:
    """This machine and PID namespace: hostname, boot id and PID-namespace inode (Linux).

    Two processes with the same node see the same PIDs, so one can tell whether the other
    still runs. None where the boot id or namespace cannot be read: no such shortcut then.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}/{pid_ns}"


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs (a zombie does not run)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # it exists, but is not ours to inspect
        return False


class MongoJournalStorage(JournalStorage):
    """``JournalStorage`` over :class:`MongoJournalBackend` with leases on running trials.

    A daemon thread stamps the lease of every trial this process runs, every
    ``heartbeat_interval`` seconds (one bulk write per tick, whatever the number of trials; it also
    writes deferred logs). Whenever a new trial is created in a study (at most once per
    interval), RUNNING trials whose lease is older than ``grace_period`` are failed and handed
    to ``stale_trial_callback``, which re-queues them. A trial not stamped yet is judged by its
    start time instead; a trial whose lease holder was a process of this machine (same boot,
    same PID namespace) that no longer runs is stale at once. So a dead worker's trial ends
    FAIL and is re-queued at most ``grace_period + heartbeat_interval`` seconds after its last
    stamp, as soon as any worker asks the study for a trial (a resumed run does so at once),
    or when a run on the study ends (:meth:`settle`).

    Optuna's own heartbeat (``BaseHeartbeat``) is not used: it starts and joins a thread per
    trial, which costs more than a short backtest trial on a loaded machine.

    Args:
        backend: The journal backend.
        heartbeat_interval: Seconds between lease stamps; None disables leases and reaping.
        grace_period: Seconds a lease stays valid; ``3 * heartbeat_interval`` when None.
        stale_trial_callback: Called with (study, trial) for each trial this process failed.
        defer_trial_logs: Write the params, intermediate values and attributes of a trial this
            process runs in one document with the trial's state change (or at the next lease
            tick), instead of one write each. Other processes see them up to one interval
            later; a worker that dies loses only the logs of its unfinished trial (and keeps
            its params if they were written with :meth:`flush` once sampled, as
            ``run_study`` does, so the re-queued copy runs the same params).
    """

    def __init__(
        self,
        backend: MongoJournalBackend,
        *,
        heartbeat_interval: float | None = 5.0,
        grace_period: float | None = None,
        stale_trial_callback: StaleTrialCallback | None = None,
        defer_trial_logs: bool = True,
    ) -> None:
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval!r}")
        super().__init__(backend)
        self.backend = backend
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or 3.0 * (heartbeat_interval or 0.0)
        if heartbeat_interval is not None and self.grace_period <= heartbeat_interval:
            raise ValueError("grace_period must exceed heartbeat_interval")
        self.stale_trial_callback = stale_trial_callback
        self._defer = defer_trial_logs
        self._worker = f"{socket.gethostname()}:{os.getpid()}:{self._worker_id_prefix[:8]}"
        self._node = _node()
        self._owned: dict[int, int] = {}  # running trial id -> study id
        self._owned_lock = threading.Lock()
        self._last_reap: dict[int, float] = {}
        self._stop = threading.Event()
        self._lease_thread: threading.Thread | None = None

    def _write_log(self, op_code: int, extra_fields: dict[str, Any]) -> None:
        log = {"op_code": op_code, "worker_id": self._replay_result.worker_id, **extra_fields}
        own = extra_fields.get("trial_id") == self._replay_result.owned_trial_id
        if self._defer and op_code in _TRIAL_LOCAL_OPS and own:
            self.backend.defer([log])
        else:
            self.backend.append_logs([log])

    # Ownership -----------------------------------------------------------------------------

    def _own(self, trial_id: int) -> None:
        if self.heartbeat_interval is None:
            return
        with self._owned_lock:
            self._owned[trial_id] = self._replay_result._trial_id_to_study_id.get(trial_id, -1)
            if self._lease_thread is None:
                self._lease_thread = threading.Thread(
                    target=_lease_loop,
                    args=(weakref.ref(self), self._stop, self.heartbeat_interval),
                    name="optuna-leases",
                    daemon=True,
                )
                self._lease_thread.start()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """Creates a trial; a new RUNNING trial first reaps the study's stale trials."""
        if template_trial is None:
            self._reap_if_due(study_id)
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._own(trial_id)
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Sets a trial's state; a trial popped by this process is leased, a finished one not."""
        ok = super().set_trial_state_values(trial_id, state, values)
        if state == TrialState.RUNNING and ok:
            self._own(trial_id)
        elif state.is_finished():
            with self._owned_lock:
                self._owned.pop(trial_id, None)
        return ok

    def stamp(self) -> None:
        """Stamps the leases of this process's running trials and writes deferred logs."""
        with self._owned_lock:
            owned = dict(self._owned)
        self.backend.stamp_leases(owned, self._worker, node=self._node)
        self.backend.flush()

    def flush(self) -> None:
        """Writes the deferred logs of the running trial now."""
        self.backend.flush()

    def close(self) -> None:
        """Stops the lease thread and writes deferred logs (a later trial starts a new one)."""
        with self._owned_lock:
            self._stop.set()
            self._stop = threading.Event()
            self._lease_thread = None
        self.backend.flush()

    # Reaping -------------------------------------------------------------------------------

    def _reap_if_due(self, study_id: int) -> None:
        if self.heartbeat_interval is None:
            return
        now = time.monotonic()
        if now - self._last_reap.get(study_id, float("-inf")) >= self.heartbeat_interval:
            self._last_reap[study_id] = now
            self.reap_stale_trials(study_id)

    def stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials of the study whose lease expired (never this process's own)."""
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        ids = [t._trial_id for t in running]
        self.backend.drop_leases(study_id, ids)
        with self._owned_lock:
            ids = [i for i in ids if i not in self._owned]
        if not ids:
            return []
        old, missing = self.backend.expired_leases(ids, self.grace_period, dead=self._holder_dead)
        # A trial never stamped is judged by its start (Optuna's naive local time).
        cutoff = dt.datetime.now() - dt.timedelta(seconds=self.grace_period)
        for t in running:
            if t._trial_id in missing and t.datetime_start and t.datetime_start < cutoff:
                old.add(t._trial_id)
        return sorted(old)

    def _holder_dead(self, lease: dict[str, Any]) -> bool:
        """Whether a lease was stamped by another process of this node that no longer runs."""
        pid = lease.get("pid")
        if self._node is None or lease.get("node") != self._node or not isinstance(pid, int):
            return False
        return pid != os.getpid() and _process_gone(pid)

    def _others_running(self, study_id: int) -> list[int]:
        """RUNNING trials of the study that this process does not run."""
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        with self._owned_lock:
            return [t._trial_id for t in running if t._trial_id not in self._owned]

    def settle(self, study_id: int, *, timeout: float | None = None) -> list[int]:
        """Fails the study's orphaned trials, for a run that ends: none is left RUNNING.

        Reaps the study's stale trials (as :meth:`reap_stale_trials`, without the
        once-per-interval limit) until no RUNNING trial is left but this process's own, or
        ``timeout`` seconds have passed. A dead worker's trial is failed (and re-queued by the
        stale-trial callback) once its lease expires, at once if its holder was a process of
        this machine; a live worker's trial is waited for until it finishes or its lease
        expires. Without leases (``heartbeat_interval=None``) this does nothing.

        Args:
            study_id: The study.
            timeout: Seconds to wait at most; ``grace_period + heartbeat_interval`` (by
                when any dead worker's lease has expired) when None; 0 = one pass.

        Returns:
            The ids of the trials this call failed. Trials of other live workers may still be
            RUNNING when it returns (after ``timeout``).
        """
        if self.heartbeat_interval is None:
            return []
        if timeout is None:
            timeout = self.grace_period + self.heartbeat_interval
        deadline = time.monotonic() + timeout
        poll = min(self.heartbeat_interval, 0.5)
        failed: list[int] = []
        while True:
            self._last_reap[study_id] = time.monotonic()
            failed += self.reap_stale_trials(study_id)
            left = deadline - time.monotonic()
            if left <= 0 or not self._others_running(study_id):
                return failed
            time.sleep(min(poll, left))

    def reap_stale_trials(self, study_id: int) -> list[int]:
        """Fails the study's stale trials and runs the stale-trial callback on each.

        Returns:
            The ids of the trials this process failed.
        """
        failed = []
        for trial_id in self.stale_trial_ids(study_id):
            try:
                if super().set_trial_state_values(trial_id, TrialState.FAIL):
                    failed.append(trial_id)
            except UpdateFinishedTrialError:  # another worker reaped it first
                continue
        if failed and self.stale_trial_callback is not None:
            study = optuna.load_study(
                study_name=self.get_study_name_from_id(study_id), storage=self
            )
            for trial_id in failed:
                trial = self.get_trial(trial_id)
                _log.warning("trial %d of %s: lease expired; failed", trial.number, study)
                self.stale_trial_callback(study, copy.deepcopy(trial))
        return failed


def _lease_loop(
    ref: weakref.ReferenceType[MongoJournalStorage], stop: threading.Event, interval: float
) -> None:
    while not stop.wait(interval):
        storage = ref()
        if storage is None:
            return
        try:
            storage.stamp()
        except Exception as exc:  # a missed stamp only shortens the lease
            _log.warning("trial leases not stamped: %s", exc)
        del storage


def optuna_storage(
    db: Database,
    *,
    collection: str = OPTUNA_JOURNAL,
    heartbeat_interval: float | None = 5.0,
    grace_period: float | None = None,
    max_retry: int | None = 3,
    retry_timeout: float = 30.0,
    read_interval: float = 0.2,
    defer_trial_logs: bool = True,
) -> MongoJournalStorage:
    """The Optuna storage of the project: a journal in MongoDB with leases on running trials.

    A trial whose worker died is failed once its lease is ``grace_period`` seconds old
    (default three lease intervals), by the next worker that starts a trial in that study,
    and re-queued with the same parameters up to ``max_retry`` times.

    Args:
        db: The project database.
        collection: Journal collection (one collection = one journal).
        heartbeat_interval: Seconds between lease stamps; None turns leases off.
        grace_period: Seconds a lease stays valid after its last stamp.
        max_retry: How often one trial may be re-queued after its worker died (None = always;
            0 = never).
        retry_timeout: Seconds to ride out a MongoDB outage before an operation fails.
        read_interval: See :class:`MongoJournalBackend`.
        defer_trial_logs: See :class:`MongoJournalStorage`.

    Returns:
        A ``JournalStorage`` (subclass) to pass to ``optuna.create_study`` / ``load_study``.
    """
    backend = MongoJournalBackend(
        db, collection=collection, retry_timeout=retry_timeout, read_interval=read_interval
    )
    callback = None
    if max_retry != 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    return MongoJournalStorage(
        backend,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        stale_trial_callback=callback,
        defer_trial_logs=defer_trial_logs,
    )
