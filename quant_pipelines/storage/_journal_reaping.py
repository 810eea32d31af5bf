"""Reaping: failing the RUNNING trials of dead workers, judged by their leases.

:class:`LeaseReaper` is the base of :class:`~quant_pipelines.storage.optuna_journal.
MongoJournalStorage`, which sets the attributes it declares; it overrides no ``JournalStorage``
method and reads no private Optuna name.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages.journal import JournalStorage
from optuna.trial import FrozenTrial, TrialState

from quant_pipelines.storage._journal_backend import MongoJournalBackend
from quant_pipelines.storage._journal_leases import TrialLeases, holder_dead

_log = logging.getLogger(__name__)
StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


class LeaseReaper(JournalStorage):
    """Stale-trial reaping over :class:`TrialLeases` (see ``MongoJournalStorage``)."""

    backend: MongoJournalBackend
    leases: TrialLeases
    heartbeat_interval: float | None
    grace_period: float
    stale_trial_callback: StaleTrialCallback | None
    _node: str | None
    _owned: dict[int, int]
    _owned_lock: threading.Lock
    _last_reap: dict[int, float]

    def _reap_if_due(self, study_id: int) -> None:
        if self.heartbeat_interval is None:
            return
        now = time.monotonic()
        if now - self._last_reap.get(study_id, float("-inf")) >= self.heartbeat_interval:
            self._last_reap[study_id] = now
            self.reap_stale_trials(study_id)

    def _running(self, study_id: int) -> dict[int, FrozenTrial]:
        """The study's RUNNING trials by trial id."""
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return {
            self.get_trial_id_from_study_id_trial_number(study_id, t.number): t for t in running
        }

    def stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials of the study whose lease expired (never this process's own)."""
        running = self._running(study_id)
        self.leases.drop(study_id, list(running))
        with self._owned_lock:
            ids = [i for i in running if i not in self._owned]
        if not ids:
            return []
        old, missing = self.leases.expired(ids, self.grace_period, dead=self._holder_dead)
        # A trial never stamped is judged by its start (Optuna's naive local time).
        cutoff = dt.datetime.now() - dt.timedelta(seconds=self.grace_period)
        for trial_id in missing:
            start = running[trial_id].datetime_start
            if start and start < cutoff:
                old.add(trial_id)
        return sorted(old)

    def _holder_dead(self, lease: dict[str, Any]) -> bool:
        """Whether a lease was stamped by another process of this node that no longer runs."""
        return holder_dead(lease, self._node)

    def _others_running(self, study_id: int) -> list[int]:
        """RUNNING trials of the study that this process does not run."""
        running = self._running(study_id)
        with self._owned_lock:
            return [i for i in running if i not in self._owned]

    def settle(self, study_id: int, *, timeout: float | None = None) -> list[int]:
        """Fails the study's orphaned trials, for a run that ends: none is left RUNNING.

        Reaps the study's stale trials (as :meth:`reap_stale_trials`, without the
        once-per-interval limit) until no RUNNING trial is left but this process's own, or
        ``timeout`` seconds have passed, after writing this process's deferred logs (the
        result of its last trial). A dead worker's trial is failed (and re-queued by the
        stale-trial callback) once its lease expires, at once if its holder was a process of
        this machine; a live worker's trial is waited for until it finishes or its lease
        expires. Without leases (``heartbeat_interval=None``) this only writes the logs.

        Args:
            study_id: The study.
            timeout: Seconds to wait at most; ``grace_period + heartbeat_interval`` (by
                when any dead worker's lease has expired) when None; 0 = one pass.

        Returns:
            The ids of the trials this call failed. Trials of other live workers may still be
            RUNNING when it returns (after ``timeout``).
        """
        self.backend.flush()
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
