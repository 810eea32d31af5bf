"""The project's Optuna storage: the journal on MongoDB with leases on running trials.

:class:`MongoJournalBackend` (``_journal_backend``) stores the journal, one document per write;
:class:`TrialLeases` (``_journal_leases``) holds the leases and :class:`LeaseReaper`
(``_journal_reaping``) fails the trials of dead workers; :class:`MongoJournalStorage` ties them
together, overriding public ``BaseStorage`` methods only and reading no private Optuna name
(pinned by ``storage_tests/test_journal_public_api.py``; see docs/optimizer.md).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from pymongo.database import Database

from quant_pipelines.storage._journal_backend import MongoJournalBackend
from quant_pipelines.storage._journal_leases import TrialLeases, node
from quant_pipelines.storage._journal_leases import start_lease_thread as _start_lease_thread
from quant_pipelines.storage._journal_reaping import LeaseReaper, StaleTrialCallback
from quant_pipelines.storage.collections import OPTUNA_JOURNAL

__all__ = [
    "MongoJournalBackend",
    "MongoJournalStorage",
    "StaleTrialCallback",
    "TrialLeases",
    "optuna_storage",
]

_UNKNOWN_STUDY = -1


class MongoJournalStorage(LeaseReaper):
    """``JournalStorage`` over :class:`MongoJournalBackend` with leases on running trials.

    A daemon thread stamps the lease of every trial this process runs, every
    ``heartbeat_interval`` seconds (one bulk write per tick, whatever the number of trials; it
    also writes deferred logs). Whenever a new trial is created in a study (at most once per
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
        defer_trial_logs: Write the params, intermediate values, attributes and final state
            of a trial this process runs in one document with its next write (usually the
            next trial's creation, else :meth:`settle`, :meth:`close` or the next lease tick),
            instead of one write each. Other processes see them up to one interval later; a
            worker that dies loses only the logs of its unfinished trial and of the trial it
            had just finished (both are failed and re-queued, and keep their params if these
            were written, see :meth:`flush`, which ``run_study`` calls once sampled). The final
            state is deferred only while the trial's lease (or start) is less than
            ``grace_period - heartbeat_interval`` old, so that no other process can have
            reaped the trial before it lands; otherwise, and without leases, it is written at
            once.
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
        self.leases = TrialLeases(
            backend.database, backend.name, retry_timeout=backend.retry_timeout
        )
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or 3.0 * (heartbeat_interval or 0.0)
        if heartbeat_interval is not None and self.grace_period <= heartbeat_interval:
            raise ValueError("grace_period must exceed heartbeat_interval")
        self.stale_trial_callback = stale_trial_callback
        self._defer = defer_trial_logs
        self._worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._node = node()
        self._owned: dict[int, int] = {}  # running trial id -> study id (-1 while unknown)
        self._fresh_since: dict[int, float] = {}  # running trial id -> last stamp (or start)
        self._owned_lock = threading.Lock()
        self._last_reap: dict[int, float] = {}
        self._stop: threading.Event | None = None  # set to stop the lease thread

    # Ownership -----------------------------------------------------------------------------

    def _own(self, trial_id: int, study_id: int, since: float) -> None:
        if self._defer:
            self.backend.hold(trial_id)
        with self._owned_lock:
            self._owned[trial_id] = study_id
            self._fresh_since[trial_id] = since
            if self.heartbeat_interval is not None and self._stop is None:
                self._stop = _start_lease_thread(self, self.heartbeat_interval)

    def _disown(self, trial_id: int) -> None:
        self.backend.release(trial_id)
        with self._owned_lock:
            self._owned.pop(trial_id, None)
            self._fresh_since.pop(trial_id, None)

    def _may_defer_finish(self, trial_id: int) -> bool:
        """Whether no other process can reap the trial before its deferred state lands."""
        if self.heartbeat_interval is None or not self._defer:
            return False
        with self._owned_lock:
            since = self._fresh_since.get(trial_id)
        margin = self.grace_period - self.heartbeat_interval
        return since is not None and time.monotonic() - since < margin

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """Creates a trial; a new RUNNING trial first reaps the study's stale trials."""
        if template_trial is None:
            self._reap_if_due(study_id)
        since = time.monotonic()
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._own(trial_id, study_id, since)
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Sets a trial's state; a trial popped by this process is leased, a finished one not.

        The final state of a trial this process runs is deferred (``defer_trial_logs``) while
        its lease is fresh, else written at once.
        """
        if state.is_finished() and not self._may_defer_finish(trial_id):
            self.backend.release(trial_id)  # written now, with its deferred logs
        since = time.monotonic()
        try:
            ok = super().set_trial_state_values(trial_id, state, values)
        except UpdateFinishedTrialError:  # another worker reaped it: it is not ours any more
            self._disown(trial_id)
            raise
        if state == TrialState.RUNNING and ok:
            self._own(trial_id, _UNKNOWN_STUDY, since)  # the lease thread looks its study up
        elif state.is_finished():
            self._disown(trial_id)
        return ok

    def _study_of(self, trial_id: int) -> int:
        """The study of a trial, by public lookups only (for the rare popped WAITING trial)."""
        number = self.get_trial_number_from_id(trial_id)
        for study in self.get_all_studies():
            study_id = self.get_study_id_from_name(study.study_name)
            try:
                if self.get_trial_id_from_study_id_trial_number(study_id, number) == trial_id:
                    return study_id
            except KeyError:
                continue
        return _UNKNOWN_STUDY

    def stamp(self) -> None:
        """Stamps the leases of this process's running trials and writes deferred logs."""
        with self._owned_lock:
            unknown = [tid for tid, sid in self._owned.items() if sid == _UNKNOWN_STUDY]
        found = {tid: self._study_of(tid) for tid in unknown}
        with self._owned_lock:
            for tid, sid in found.items():
                if tid in self._owned:
                    self._owned[tid] = sid
            owned = dict(self._owned)
        since = time.monotonic()
        self.leases.stamp(owned, self._worker, node=self._node)
        with self._owned_lock:
            for tid in owned:
                if tid in self._fresh_since:
                    self._fresh_since[tid] = since
        self.backend.flush()

    def flush(self, *, wait: bool = True) -> None:
        """Writes the deferred logs of the running trial now.

        Args:
            wait: Return once they are written. False has a background thread write them
                once they have waited the backend's ``flush_delay``, unless the trial's next
                write takes them along first (``run_study`` asks so once a trial's params are
                sampled: a trial that runs longer writes them while its objective runs, a
                shorter one writes them with its result).
        """
        self.backend.flush(wait=wait)

    def close(self) -> None:
        """Stops the lease thread and the background writer, and writes deferred logs (a later
        trial starts new ones)."""
        with self._owned_lock:
            if self._stop is not None:
                self._stop.set()
                self._stop = None
        self.backend.close()


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
    flush_delay: float = 0.1,
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
        flush_delay: See :class:`MongoJournalBackend`: a trial shorter than this writes its
            params with its result (one write per trial); a worker killed earlier in a trial
            loses that trial's params (its retry samples anew).

    Returns:
        A ``JournalStorage`` (subclass) to pass to ``optuna.create_study`` / ``load_study``.
    """
    backend = MongoJournalBackend(
        db,
        collection=collection,
        retry_timeout=retry_timeout,
        read_interval=read_interval,
        flush_delay=flush_delay,
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
