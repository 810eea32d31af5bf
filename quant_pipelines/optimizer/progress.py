"""Progress of a study, its best trial, and the trial documents mirrored for dashboards.

Everything here is a pure function of trial records, so the Optuna and Hyperopt engines share
it. A trial record (:class:`TrialRecord`) is the engine-neutral view of one trial.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from quant_pipelines.optimizer._vocabulary import DONE_STATES as DONE_STATES
from quant_pipelines.optimizer._vocabulary import PROGRESS_FIELDS as PROGRESS_FIELDS
from quant_pipelines.optimizer.dsr import (
    configurations_tried,
    dsr_of,
    sharpe_variance_of,
    trial_sharpe,
)


class StudyRecorder(Protocol):
    """Where the runner mirrors studies and trials (``storage.studies.StudiesRepository``)."""

    def upsert_study(self, study_name: str, fields: Mapping[str, Any]) -> None:
        """Creates or updates the study document."""

    def update_progress(
        self,
        study_name: str,
        progress: Mapping[str, Any],
        *,
        best: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> None:
        """Sets the study's progress, best trial and status."""

    def upsert_trial(self, study_name: str, number: int, fields: Mapping[str, Any]) -> None:
        """Creates or updates one trial document."""

    def upsert_trials(self, study_name: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """Upserts many trial documents (each with its ``number``)."""


@dataclass
class TrialRecord:
    """One trial, engine-neutral.

    Attributes:
        number: Trial number in the study.
        state: "COMPLETE", "PRUNED", "FAIL", "RUNNING" or "WAITING".
        params: Parameters tried.
        values: Objective values (None unless complete).
        is_metrics: In-sample metrics.
        oos_metrics: Out-of-sample metrics.
        constraints: Constraint values (feasible when all <= 0).
        start: When it started (UTC), if known.
        complete: When it finished (UTC), if known.
        retry_of: The number of the trial it re-runs after its worker died, if any.
        scores: The objective's ``in_sample``, ``validation`` and ``holdout`` values (lists,
            or None) and the first objective on each validation path (``paths``).
        partial: For a pruned trial, the Sharpe statistics of the validation bars it was
            scored on before it was stopped (``sharpe``, ``n_obs``, ``skew``, ``kurtosis``,
            ``periods_per_year``, ``step``).
    """

    number: int
    state: str
    params: dict[str, Any]
    values: list[float] | None = None
    is_metrics: dict[str, float] = field(default_factory=dict)
    oos_metrics: dict[str, float] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    start: dt.datetime | None = None
    complete: dt.datetime | None = None
    retry_of: int | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    partial: dict[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """All constraints hold."""
        return all(v <= 0.0 for v in self.constraints.values())

    @property
    def value(self) -> float | None:
        """The first objective value."""
        return None if not self.values else float(self.values[0])


def deflated_sharpe(
    record: TrialRecord,
    population: Sequence[TrialRecord],
    *,
    n_trials: int | None = None,
    sharpe_variance: float | None = None,
) -> float | None:
    """Deflated Sharpe ratio of a trial selected among every configuration of ``population``.

    ``N`` is :func:`~quant_pipelines.optimizer.dsr.configurations_tried` (complete, pruned and
    failed-by-evaluation configurations) and the variance is taken over every trial with a
    Sharpe ratio (see :mod:`quant_pipelines.optimizer.dsr`), unless given.

    Returns:
        The DSR in [0, 1], or None without the needed in-sample statistics.
    """
    stats = trial_sharpe(record)
    if stats is None or record.state != "COMPLETE":
        return None
    n = configurations_tried(population) if n_trials is None else n_trials
    var = sharpe_variance
    if var is None:
        var, _ = sharpe_variance_of(population)
    return dsr_of(stats, n, var)


def trial_document(
    record: TrialRecord,
    population: Sequence[TrialRecord],
    context: Mapping[str, Any],
    *,
    dsr: Mapping[int, float | None] | None = None,
) -> dict[str, Any]:
    """The ``trials`` document of one trial.

    Args:
        record: The trial.
        population: The study's trials (for the deflated Sharpe ratio).
        context: Study-level fields copied on every trial (strategy, asset_class, objective ...).
        dsr: Final deflated Sharpe ratios by trial number (from the study's statistics); the
            running estimate over ``population`` when None.
    """
    duration = None
    if record.start and record.complete:
        duration = (record.complete - record.start).total_seconds()
    return {
        **context,
        "number": record.number,
        "state": record.state,
        "params": record.params,
        "value": record.value,
        "values": record.values,
        "is_metrics": record.is_metrics,
        "oos_metrics": record.oos_metrics,
        "constraints": record.constraints,
        "feasible": record.feasible,
        "deflated_sharpe": (
            dsr.get(record.number)
            if dsr is not None
            else deflated_sharpe(record, population)
            if record.state == "COMPLETE"
            else None
        ),
        "retry_of": record.retry_of,
        "in_sample": (record.scores.get("in_sample") or [None])[0],
        "validation": (record.scores.get("validation") or [None])[0],
        "holdout": (record.scores.get("holdout") or [None])[0],
        "scores": record.scores,
        "partial": record.partial or None,
        "datetime_start": record.start,
        "datetime_complete": record.complete,
        "duration_s": duration,
    }


def best_trial(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The feasible complete trial with the highest first objective value."""
    ok = [r for r in records if r.state == "COMPLETE" and r.feasible and r.value is not None]
    return max(ok, key=lambda r: (r.value, -r.number)) if ok else None


def best_document(record: TrialRecord | None) -> dict[str, Any] | None:
    """The ``best`` field of a study document."""
    if record is None:
        return None
    return {
        "number": record.number,
        "value": record.value,
        "values": record.values,
        "params": record.params,
        "is_sharpe": record.is_metrics.get("sharpe"),
        "oos_sharpe": record.oos_metrics.get("sharpe"),
        "max_drawdown": record.is_metrics.get("max_drawdown"),
        "n_trades": record.is_metrics.get("n_trades"),
    }


class ProgressClock:
    """Tracks trials done against a budget, and the rate since the run started.

    Args:
        n_trials: The study's budget of done (complete or pruned) trials.
        done_at_start: Trials already done when this run started (a resumed study).
    """

    def __init__(self, n_trials: int, done_at_start: int) -> None:
        self.n_trials = n_trials
        self.done_at_start = done_at_start
        self.started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def progress(self, records: Sequence[TrialRecord]) -> dict[str, Any]:
        """The ``progress`` field (:data:`PROGRESS_FIELDS`): counts, best trial, trials per
        hour (this run), ETA (seconds)."""
        counts = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
        for r in records:
            counts[r.state] = counts.get(r.state, 0) + 1
        done = counts["COMPLETE"] + counts["PRUNED"]
        elapsed = max(self.elapsed(), 1e-9)
        ran = max(done - self.done_at_start, 0)
        rate = ran / elapsed * 3600.0
        left = max(self.n_trials - done, 0)
        best = best_trial(records)
        return {
            "done": done,
            "total": self.n_trials,
            "complete": counts["COMPLETE"],
            "pruned": counts["PRUNED"],
            "failed": counts["FAIL"],
            "running": counts["RUNNING"],
            "waiting": counts["WAITING"],
            "best_value": None if best is None else best.value,
            "best_params": None if best is None else best.params,
            "trials_per_hour": rate,
            "eta_s": (left / rate * 3600.0) if rate > 0 else None,
            "elapsed_s": elapsed,
            "updated_at": dt.datetime.now(dt.UTC),
        }


@dataclass(frozen=True)
class StudySummary:
    """What :func:`~quant_pipelines.optimizer.run_study` returns.

    Attributes:
        study_name: The study.
        engine: "optuna" or "hyperopt".
        objective: Objective name.
        sampler: Sampler (or Hyperopt algorithm) name.
        status: "completed" (budget reached, no trial running), "running" (budget reached
            while another worker's trial still runs), "incomplete" (timeout, failures) or
            "failed".
        best_params: Parameters of the best feasible trial (None if there is none).
        best_value: Its first objective value.
        best_values: All its objective values.
        best_number: Its trial number.
        n_trials: Trials done in the study (complete + pruned), across all runs and workers.
        n_complete: Complete trials.
        n_pruned: Pruned trials.
        n_failed: Failed trials.
        trials_run: Trials this call finished.
        trials_per_hour: Study trials done per hour during this call.
        elapsed_seconds: Duration of this call.
        baseline_params: The strategy's default parameters.
        baseline_value: Their first objective value.
        improvement: ``best_value - baseline_value`` (None without a best trial).
        best_oos_sharpe: The best trial's out-of-sample Sharpe ratio.
        best_deflated_sharpe: Its deflated Sharpe ratio over every configuration tried.
        statistics: The study's overfitting statistics (``StudyStatistics.to_dict()``).
        stopped_at_limit: This call stopped starting trials because its ``timeout`` (the
            run's wall-clock limit) ran out before the budget was spent: the study is
            "incomplete" and a later call with the same name resumes it.
    """

    study_name: str
    engine: str
    objective: str
    sampler: str
    status: str
    best_params: dict[str, Any] | None
    best_value: float | None
    best_values: list[float] | None
    best_number: int | None
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    trials_run: int
    trials_per_hour: float
    elapsed_seconds: float
    baseline_params: dict[str, Any]
    baseline_value: float
    improvement: float | None
    best_oos_sharpe: float | None = None
    best_deflated_sharpe: float | None = None
    statistics: dict[str, Any] | None = None
    stopped_at_limit: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dict(self.__dict__)


def summarize(
    records: Sequence[TrialRecord],
    *,
    study_name: str,
    engine: str,
    objective: str,
    sampler: str,
    n_trials: int,
    trials_run: int,
    clock: ProgressClock,
    baseline: Mapping[str, Any],
) -> StudySummary:
    """Builds the summary of a finished run from the study's trial records."""
    prog = clock.progress(records)
    best = best_trial(records)
    base = float(baseline["values"][0])
    return StudySummary(
        study_name=study_name,
        engine=engine,
        objective=objective,
        sampler=sampler,
        status="completed" if prog["done"] >= n_trials else "incomplete",
        best_params=None if best is None else best.params,
        best_value=None if best is None else best.value,
        best_values=None if best is None else best.values,
        best_number=None if best is None else best.number,
        n_trials=prog["done"],
        n_complete=prog["complete"],
        n_pruned=prog["pruned"],
        n_failed=prog["failed"],
        trials_run=trials_run,
        trials_per_hour=prog["trials_per_hour"],
        elapsed_seconds=prog["elapsed_s"],
        baseline_params=dict(baseline["params"]),
        baseline_value=base,
        improvement=None if best is None or best.value is None else best.value - base,
        best_oos_sharpe=None if best is None else best.oos_metrics.get("sharpe"),
        best_deflated_sharpe=None if best is None else deflated_sharpe(best, records),
    )
