"""The study use cases: one Optuna study of a strategy on an asset class (nightly or requested
over HTTP), and one worker of a study shared by several processes.

The Dagster assets and ops call these; they never import Dagster. Request state is not
touched here: the Dagster sensors own the request lifecycle (``storage.requests``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quant_pipelines.optimizer import StudySummary, Validation, run_study
from quant_pipelines.storage import optuna_storage
from quant_pipelines.storage.repositories import Repositories


class NoBarsError(LookupError):
    """No bars of the requested symbols in MongoDB over the study's period."""


@dataclass(frozen=True)
class StudySpec:
    """What one study run optimizes.

    Attributes:
        strategy: Strategy name (a partition dimension).
        asset_class: Asset class (a partition dimension).
        symbols: Symbols whose bars the study reads.
        start: First day (``YYYY-MM-DD``).
        end: Last day (``YYYY-MM-DD``).
        study_name: The Optuna study (a run with the same name resumes it).
        n_trials: The study's budget of done trials.
        validation: The validation scheme.
        objective: Objective name.
        sampler: Sampler name.
        engine: "optuna" or "hyperopt".
        seed: Sampler seed.
        oos_fraction: Holdout fraction.
        wall_limit: Seconds this run may optimize (None: no limit).
        metadata: Extra fields stored on the study document (partition, run id, request id).
        portfolio: Book every symbol as one portfolio (``strategy`` is then a portfolio
            strategy, or a single-asset one meaning ``signal_<name>``).
    """

    strategy: str
    asset_class: str
    symbols: list[str]
    start: str
    end: str
    study_name: str
    n_trials: int = 40
    validation: Validation = field(default_factory=Validation)
    objective: str = "sharpe"
    sampler: str = "tpe"
    engine: str = "optuna"
    seed: int = 0
    oos_fraction: float = 0.3
    wall_limit: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    portfolio: bool = False


@dataclass(frozen=True)
class StudyReport:
    """What :func:`run_requested_study` returns.

    Attributes:
        spec: The study that ran.
        symbols: The symbols that had bars.
        summary: The runner's summary (statistics included).
    """

    spec: StudySpec
    symbols: list[str]
    summary: StudySummary

    @property
    def resumable(self) -> bool:
        """The run stopped at its wall-clock limit with trials done: a later run resumes it."""
        s = self.summary
        return bool(s.stopped_at_limit and s.trials_run > 0 and self.spec.engine == "optuna")

    @property
    def statistics(self) -> dict[str, Any]:
        """The study's overfitting statistics (empty without any)."""
        return self.summary.statistics or {}


def study_period(
    start: str, end: str, *, lookback_days: int, now: pd.Timestamp | None = None
) -> tuple[str, str]:
    """The study's ``(start, end)`` days: given ones, else ``lookback_days`` up to today."""
    today = (now or pd.Timestamp.now(tz="UTC")).tz_convert(None)
    last = pd.Timestamp(end) if end else today
    first = pd.Timestamp(start) if start else last - pd.Timedelta(days=lookback_days)
    return first.strftime("%Y-%m-%d"), last.strftime("%Y-%m-%d")


def _bars(repos: Repositories, symbols: list[str], start: str, end: str) -> dict:
    return {s: b for s, b in repos.bars.read_many(symbols, start, end).items() if len(b)}


def run_requested_study(repos: Repositories, spec: StudySpec) -> StudyReport:
    """Runs (or resumes) one study on the bars in MongoDB and mirrors it for dashboards.

    Args:
        repos: The project's repositories.
        spec: What to optimize.

    Returns:
        The :class:`StudyReport`; ``resumable`` when the run stopped at its wall-clock limit.

    Raises:
        NoBarsError: No bars of ``spec.symbols`` over the period (nothing was written).
    """
    bars = _bars(repos, spec.symbols, spec.start, spec.end)
    if not bars:
        raise NoBarsError(
            f"no bars in MongoDB for {spec.symbols} between {spec.start} and {spec.end}; "
            f"materialize market_bars/{spec.asset_class} for that period first"
        )
    storage = optuna_storage(repos.db) if spec.engine == "optuna" else None
    try:
        summary = run_study(
            bars,
            strategy=spec.strategy,
            study_name=spec.study_name,
            n_trials=spec.n_trials,
            timeout=spec.wall_limit,
            objective=spec.objective,
            sampler=spec.sampler,
            seed=spec.seed,
            engine=spec.engine,
            storage=storage,
            recorder=repos.studies,
            validation=spec.validation,
            oos_fraction=spec.oos_fraction,
            asset_class=spec.asset_class,
            metadata={**spec.metadata, "start": spec.start, "end": spec.end},
            portfolio=spec.portfolio or None,
        )
    finally:
        if storage is not None:
            storage.close()  # stops the lease thread of this run
    return StudyReport(spec, sorted(bars), summary)


@dataclass(frozen=True)
class WorkerReport:
    """What :func:`run_study_worker` returns: the trials it ran, when, and the CPU it used.

    Attributes:
        worker: The worker's index.
        trials_run: Trials this worker ran.
        n_trials: The study's done trials when it stopped.
        started: UNIX seconds when it began optimizing (after reading the bars).
        finished: UNIX seconds when it returned (the study's statistics included).
        cpu_seconds: CPU seconds of its process (every thread) between the two.
    """

    worker: int
    trials_run: int
    n_trials: int
    started: float
    finished: float
    cpu_seconds: float = 0.0


def run_study_worker(
    repos: Repositories,
    *,
    worker: int,
    study_name: str,
    strategy: str,
    symbols: list[str],
    start: str,
    end: str,
    n_trials: int,
    sampler: str = "tpe",
    seed: int = 0,
    asset_class: str = "equity",
    wall_limit: float | None = None,
    objective: str = "sharpe",
    validation: Validation | None = None,
    pruner: str = "median",
    oos_fraction: float = 0.3,
    max_bars: int = 0,
    periods_per_year: float | None = None,
) -> WorkerReport:
    """One worker of a study shared through the MongoDB journal; each samples its own stream.

    Every worker of a study must get the same arguments but ``worker`` (the bars, validation
    and objective define the study; a study created for another strategy or objective is
    refused).

    Args:
        repos: The project's repositories.
        worker: The worker's index (its seed offset).
        study_name: The shared study.
        strategy: Strategy name.
        symbols: Symbols whose bars the study reads.
        start: First day.
        end: Last day.
        n_trials: The study's budget (shared by every worker).
        sampler: Sampler name.
        seed: Base seed; the worker samples with ``seed + worker``.
        asset_class: Asset class of the symbols.
        wall_limit: Seconds this worker may optimize (None: no limit).
        objective: Objective name.
        validation: The validation scheme (None: walk-forward, 3 folds).
        pruner: Pruner name ("none" scores every validation path of every trial).
        oos_fraction: Holdout fraction.
        max_bars: Each symbol's last ``max_bars`` bars of the period (0: all of them).
        periods_per_year: Annualisation (None: the asset class's, for daily bars).

    Returns:
        The :class:`WorkerReport` (times as UNIX seconds).

    Raises:
        NoBarsError: No bars of ``symbols`` over the period.
        ValueError: ``max_bars`` is negative, or a bad study argument (``run_study``).
    """
    if max_bars < 0:
        raise ValueError(f"max_bars must be >= 0 (0 = every bar), got {max_bars}")
    bars = _bars(repos, symbols, start, end)
    if not bars:
        raise NoBarsError(f"no bars in MongoDB for {symbols} between {start} and {end}")
    if max_bars:
        bars = {s: b.iloc[-max_bars:] for s, b in bars.items()}
    storage = optuna_storage(repos.db)
    started, cpu = dt.datetime.now(dt.UTC), time.process_time()
    try:
        summary = run_study(
            bars,
            strategy=strategy,
            study_name=study_name,
            n_trials=n_trials,
            sampler=sampler,
            seed=seed + worker,
            timeout=wall_limit,
            storage=storage,
            recorder=repos.studies,
            asset_class=asset_class,
            objective=objective,
            validation=validation or Validation(),
            pruner=pruner,
            oos_fraction=oos_fraction,
            periods_per_year=periods_per_year,
        )
    finally:
        storage.close()
    finished, cpu = dt.datetime.now(dt.UTC), time.process_time() - cpu
    return WorkerReport(
        worker,
        summary.trials_run,
        summary.n_trials,
        started.timestamp(),
        finished.timestamp(),
        cpu,
    )


__all__ = [
    "NoBarsError",
    "StudyReport",
    "StudySpec",
    "WorkerReport",
    "run_requested_study",
    "run_study_worker",
    "study_period",
]
