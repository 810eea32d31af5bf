"""Writes a run's study and trial mirrors through a :class:`StudyRecorder`, never failing a trial.

After every trial, its document and the study's progress are queued for a writer thread, so
the optimisation never waits on the database. The writer batches what arrives within
``WRITE_INTERVAL`` seconds: the trial documents go in one bulk upsert, and only the latest
progress is written (so the study document lags the study by at most about that much).
Writes that fail (a MongoDB outage) are logged: the end of every run computes the study's
overfitting statistics and re-writes what was not written plus every complete and pruned trial
with its final deflated Sharpe ratio, and only that final write may fail the run. A resumed
run first re-writes every trial of the study.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from quant_pipelines._utils.time import utc
from quant_pipelines.optimizer.dsr import TRIED_STATES, dsr_of, params_key, per_period, trial_sharpe
from quant_pipelines.optimizer.overfitting import sharpe_variance
from quant_pipelines.optimizer.progress import (
    DONE_STATES,
    ProgressClock,
    StudyRecorder,
    StudySummary,
    TrialRecord,
    best_document,
    best_trial,
    trial_document,
)

_log = logging.getLogger(__name__)
_FINISHED = frozenset({"COMPLETE", "PRUNED", "FAIL"})
#: Seconds the writer waits after a trial for more to batch with it.
WRITE_INTERVAL = 0.5


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else utc(t, naive_is_local=True)  # Optuna's naive local times


def record_of(t: FrozenTrial) -> TrialRecord:
    """The engine-neutral record of an Optuna trial."""
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        params=dict(t.params),
        values=None if t.values is None else [float(v) for v in t.values],
        is_metrics=dict(t.user_attrs.get("is", {})),
        oos_metrics=dict(t.user_attrs.get("oos", {})),
        constraints=dict(t.constraints),
        start=_utc(t.datetime_start),
        complete=_utc(t.datetime_complete),
        retry_of=t.system_attrs.get("failed_trial"),
        scores=dict(t.user_attrs.get("scores", {})),
        partial=dict(t.user_attrs.get("partial", {})),
    )


class _Writer:
    """A daemon thread draining queued trial documents and progress into a recorder."""

    def __init__(self, mirror: Mirror, *, min_interval: float = WRITE_INTERVAL) -> None:
        self._mirror = mirror
        self._min_interval = min_interval
        self._cond = threading.Condition()
        self._docs: list[dict[str, Any]] = []
        self._progress: tuple[dict[str, Any], dict[str, Any] | None] | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="study-mirror", daemon=True)
        self._thread.start()

    def put(self, doc: dict[str, Any], progress: dict[str, Any], best: dict | None) -> None:
        with self._cond:
            idle = not self._docs and self._progress is None
            self._docs.append(doc)
            self._progress = (progress, best)
            if idle:  # a writer coalescing a batch needs no wake-up (one per trial costs more)
                self._cond.notify()

    def close(self, *, wait: bool = True) -> None:
        """Writes what is queued and ends the thread; ``wait=False`` returns at once (then
        :meth:`join`)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if wait:
            self.join()

    def join(self) -> None:
        """Waits until the thread has written what was queued and ended."""
        self._thread.join()

    def _loop(self) -> None:
        m = self._mirror
        while True:
            with self._cond:
                while not (self._docs or self._progress or self._closed):
                    self._cond.wait()
                # Coalesce: let more trials queue up, unless the run is ending.
                self._cond.wait_for(lambda: self._closed, timeout=self._min_interval)
                docs, self._docs = self._docs, []
                progress, self._progress = self._progress, None
                closed = self._closed
            if docs and not m._try("trials", lambda r, d=docs: r.upsert_trials(m.study_name, d)):
                m.unwritten.update(d["number"] for d in docs)
            if progress is not None:
                prog, best = progress
                m._try(
                    "progress",
                    lambda r, p=prog, b=best: r.update_progress(
                        m.study_name, p, best=b, status="running"
                    ),
                )
            if closed and not docs and progress is None:
                return


class Mirror:
    """The mirrors of one study during one run.

    Args:
        study_name: The study.
        recorder: Where documents go (None = nowhere).
        context: Fields copied onto every trial document.
        on_progress: User callback, called with the progress after every trial.
        statistics: Computes the study's overfitting statistics from its records at the end
            of a run (``StudyStatistics``); stored in the study document, and its DSRs in the
            trial documents.
    """

    def __init__(
        self,
        study_name: str,
        recorder: StudyRecorder | None,
        context: Mapping[str, Any],
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        statistics: Callable[[Sequence[TrialRecord]], Any] | None = None,
    ) -> None:
        self.study_name = study_name
        self.statistics = statistics
        self.recorder = recorder
        self.context = dict(context)
        self.on_progress = on_progress
        self.clock: ProgressClock | None = None
        self.trials_run = 0
        self.unwritten: set[int] = set()  # trial numbers whose last write failed
        self._written: dict[int, str] = {}  # trial number -> state written
        self._finished: dict[int, tuple[FrozenTrial, TrialRecord]] = {}
        # Finished record -> (its configuration key or None, its per-period Sharpe or None).
        self._dsr_inputs: dict[int, tuple[TrialRecord, str | None, float | None]] = {}
        self._writer: _Writer | None = None

    def _try(self, what: str, fn: Callable[[StudyRecorder], object]) -> bool:
        if self.recorder is None:
            return True
        try:
            fn(self.recorder)
            return True
        except Exception as exc:  # mirrors are rebuilt at the end of the run
            _log.warning("study %s: %s not mirrored: %s", self.study_name, what, exc)
            return False

    def upsert_study(self, fields: Mapping[str, Any]) -> None:
        """Creates or updates the study document (best effort)."""
        self._try("study", lambda r: r.upsert_study(self.study_name, fields))

    def status(self, status: str) -> None:
        """Sets the study's status (best effort)."""
        self.upsert_study({"status": status})

    @staticmethod
    def done(records: Sequence[TrialRecord]) -> int:
        """Complete and pruned trials."""
        return sum(r.state in DONE_STATES for r in records)

    def record(self, trial: FrozenTrial) -> TrialRecord:
        """The record of a frozen trial (finished trials are converted once)."""
        hit = self._finished.get(trial.number)
        if hit is not None and (hit[0] is trial or hit[0].state == trial.state):
            return hit[1]
        rec = record_of(trial)
        if rec.state in _FINISHED:
            self._finished[trial.number] = (trial, rec)
        return rec

    def records(self, study: optuna.Study) -> list[TrialRecord]:
        """Records of all the study's trials."""
        return [self.record(t) for t in study.get_trials(deepcopy=False)]

    def sync(self, records: Sequence[TrialRecord]) -> None:
        """Upserts every trial document (best effort)."""
        docs = [trial_document(r, records, self.context) for r in records]
        if docs and self._try("trials", lambda r: r.upsert_trials(self.study_name, docs)):
            self._written.update((r.number, r.state) for r in records)

    def trial_done(self, record: TrialRecord, records: Sequence[TrialRecord]) -> dict[str, Any]:
        """Queues one finished trial and the study's progress for the mirrors; returns the
        progress."""
        assert self.clock is not None
        self.trials_run += 1
        prog = self.clock.progress(records)
        best = best_document(best_trial(records))
        if self.recorder is not None:
            if self._writer is None:
                self._writer = _Writer(self)
            dsr = {record.number: self.running_dsr(record, records)}
            self._writer.put(trial_document(record, records, self.context, dsr=dsr), prog, best)
            self._written[record.number] = record.state
        if self.on_progress is not None:
            self.on_progress(dict(prog, best=best))
        return prog

    def running_dsr(self, record: TrialRecord, records: Sequence[TrialRecord]) -> float | None:
        """``progress.deflated_sharpe(record, records)``, from the configuration key and
        Sharpe ratio of each finished record computed once (not once per trial: a study's
        mirror would otherwise cost more with every trial)."""
        stats = trial_sharpe(record)
        if stats is None or record.state != "COMPLETE":
            return None
        keys: set[str] = set()
        sharpes: list[float] = []
        for r in records:
            hit = self._dsr_inputs.get(r.number)
            if hit is None or hit[0] is not r:
                s = trial_sharpe(r)
                key = params_key(r.params) if r.state in TRIED_STATES and r.params else None
                hit = (r, key, None if s is None else per_period(s))
                if r.state in _FINISHED:
                    self._dsr_inputs[r.number] = hit
            if hit[1] is not None:
                keys.add(hit[1])
            if hit[2] is not None:
                sharpes.append(hit[2])
        return dsr_of(stats, len(keys), sharpe_variance(sharpes)[0])

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        """The Optuna callback body: mirror the trial, update progress."""
        records = self.records(study)
        return self.trial_done(self.record(trial), records)

    def close(self) -> None:
        """Waits until the queued writes are done."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self, records: Sequence[TrialRecord], summary: StudySummary) -> StudySummary:
        """Final write: the study's statistics, every complete or pruned trial with its final
        deflated Sharpe ratio, trials not yet written (or whose write failed), the status,
        best trial and summary. Raises when the recorder fails.

        Returns:
            The summary with the study's statistics and the best trial's final DSR.
        """
        # The queued writes drain while the statistics are computed (the server writes them
        # while this process computes); they must have landed before the final writes below.
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close(wait=False)
        stats = None
        try:
            if self.statistics is not None:
                stats = self.statistics(records)
        finally:
            if writer is not None:
                writer.join()
        if stats is not None:
            best = summary.best_number
            summary = dataclasses.replace(
                summary,
                best_deflated_sharpe=None if best is None else stats.deflated_sharpe.get(best),
                statistics=stats.to_dict(),
            )
        if self.recorder is None:
            return summary
        assert self.clock is not None
        dsr = None if stats is None else stats.deflated_sharpe
        docs = [
            trial_document(r, records, self.context, dsr=dsr)
            for r in records
            if r.state in DONE_STATES
            or r.number in self.unwritten
            or self._written.get(r.number) != r.state
        ]
        if docs:
            self.recorder.upsert_trials(self.study_name, docs)
        self.recorder.update_progress(
            self.study_name,
            self.clock.progress(records),
            best=best_document(best_trial(records)),
            status=summary.status,
        )
        fields: dict[str, Any] = {
            "summary": dataclasses.asdict(summary),
            "improvement": summary.improvement,
            "trials_per_hour": summary.trials_per_hour,
        }
        if stats is not None:
            fields["statistics"] = stats.to_dict()
        self.recorder.upsert_study(self.study_name, fields)
        return summary
