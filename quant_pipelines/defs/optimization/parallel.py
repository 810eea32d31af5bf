"""One study optimized by several worker processes sharing the MongoDB journal (the
multiprocess executor); each worker op calls
:func:`quant_pipelines.services.optimization.run_study_worker`.

Scale-out pays when a trial is objective-bound (docs/runbook.md, "Parallel study workers"):
several symbols, long histories and CPCV paths make a trial cost far more than its journal
round-trips, so the workers overlap instead of contending for the database.
"""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config parameter
# annotations of ops at definition time, and PEP 563 strings defeat it.

import dataclasses
from typing import Any, Literal

import dagster as dg

from quant_pipelines.backtest import get_strategy
from quant_pipelines.defs.market_data.assets import WORKLOAD_TAG
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.optimizer import OBJECTIVES, SAMPLERS, Validation
from quant_pipelines.services.optimization import run_study_worker


class ParallelStudyConfig(dg.Config):
    """One study optimized by several worker processes sharing the MongoDB journal.

    The validation fields are those of ``optimization_study`` (``OptimizationConfig``);
    ``validation="cpcv"`` with several symbols and long histories makes a trial
    objective-bound, which is when more workers pay.
    """

    study_name: str
    strategy: str = "sma_crossover"
    symbols: list[str]
    start: str
    end: str
    n_trials: int = 100
    workers: int = 2
    sampler: str = "tpe"
    seed: int = 0
    asset_class: str = "equity"
    #: Wall-clock limit of each worker (seconds; 0 = none); running the job again with the
    #: same ``study_name`` resumes the study.
    max_wall_seconds: int = 7200
    objective: str = "sharpe"
    validation: Literal["walk_forward", "cpcv", "none"] = "walk_forward"
    n_folds: int = 3
    scheme: Literal["anchored", "rolling"] = "anchored"
    train_frac: float = 0.5
    purge: int = 0
    embargo: int = 0
    n_groups: int = 6
    n_test_groups: int = 2
    oos_fraction: float = 0.3
    #: "none" scores every validation path of every trial; "median" and "percentile" stop
    #: a trial early (each validation path is a checkpoint read from the journal).
    pruner: Literal["median", "percentile", "none"] = "median"
    #: Each symbol's last ``max_bars`` bars of the period (0 = every bar).
    max_bars: int = 0
    #: Bars per year for annualisation (0 = the asset class's, for daily bars); e.g. 8760
    #: for hourly crypto bars.
    periods_per_year: float = 0.0

    def to_validation(self) -> Validation:
        """The study's validation scheme."""
        return Validation(
            method=self.validation,
            n_folds=self.n_folds,
            scheme=self.scheme,
            train_frac=self.train_frac,
            purge=self.purge,
            embargo=self.embargo,
            n_groups=self.n_groups,
            n_test_groups=self.n_test_groups,
        )

    def worker_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``run_study_worker`` but ``worker``."""
        return {
            "study_name": self.study_name,
            "strategy": self.strategy,
            "symbols": list(self.symbols),
            "start": self.start,
            "end": self.end,
            "n_trials": self.n_trials,
            "sampler": self.sampler,
            "seed": self.seed,
            "asset_class": self.asset_class,
            "wall_limit": float(self.max_wall_seconds) if self.max_wall_seconds > 0 else None,
            "objective": self.objective,
            "validation": self.to_validation(),
            "pruner": self.pruner,
            "oos_fraction": self.oos_fraction,
            "max_bars": self.max_bars,
            "periods_per_year": self.periods_per_year or None,
        }

    def check(self) -> None:
        """Fails fast, naming the field, on values no worker could run with.

        Raises:
            ValueError: The first bad field, with its value and what is allowed.
        """
        bad = _first_error(self)
        if bad:
            raise ValueError(f"parallel_study_job config {self.study_name!r}: {bad}")


def _first_error(c: ParallelStudyConfig) -> str | None:
    """The first bad field of ``c`` as a message, or None."""
    rules = [
        (c.workers >= 1, f"workers must be >= 1, got {c.workers}"),
        (c.n_trials >= 1, f"n_trials must be >= 1, got {c.n_trials}"),
        (bool(c.symbols), "symbols must name at least one symbol"),
        (c.max_wall_seconds >= 0, f"max_wall_seconds must be >= 0, got {c.max_wall_seconds}"),
        (c.max_bars >= 0, f"max_bars must be >= 0 (0 = every bar), got {c.max_bars}"),
        (c.periods_per_year >= 0, f"periods_per_year must be >= 0, got {c.periods_per_year}"),
        (0.0 <= c.oos_fraction < 1.0, f"oos_fraction must be in [0, 1), got {c.oos_fraction}"),
        (
            c.objective in OBJECTIVES,
            f"objective {c.objective!r} is unknown; allowed: {', '.join(OBJECTIVES)}",
        ),
        (c.sampler in SAMPLERS, f"sampler {c.sampler!r} is unknown; allowed: {list(SAMPLERS)}"),
        (c.purge >= 0, f"purge must be >= 0, got {c.purge}"),
    ]
    if c.validation == "walk_forward":
        rules += [
            (c.n_folds >= 1, f"n_folds must be >= 1, got {c.n_folds}"),
            (0.0 < c.train_frac < 1.0, f"train_frac must be in (0, 1), got {c.train_frac}"),
        ]
    if c.validation == "cpcv":
        rules += [
            (c.n_groups >= 2, f"n_groups must be >= 2, got {c.n_groups}"),
            (
                1 <= c.n_test_groups < c.n_groups,
                f"n_test_groups must be in [1, n_groups={c.n_groups}), got {c.n_test_groups}",
            ),
            (c.embargo >= 0, f"embargo must be >= 0, got {c.embargo}"),
        ]
    for ok, message in rules:
        if not ok:
            return message
    try:
        get_strategy(c.strategy)
    except (KeyError, ValueError) as exc:
        return f"strategy: {exc}"
    return None


@dg.op(out=dg.DynamicOut(int), description="Fan the study out to its workers.")
def study_workers(config: ParallelStudyConfig):
    """One dynamic output per worker, once the config is checked."""
    try:
        config.check()
    except ValueError as exc:  # the run fails before any worker starts, naming the field
        raise dg.Failure(description=str(exc)) from exc
    for worker in range(config.workers):
        yield dg.DynamicOutput(worker, mapping_key=f"w{worker}")


@dg.op(description="A worker: optimizes the shared study until its trial budget is spent.")
def study_worker(worker: int, config: ParallelStudyConfig, mongo: MongoResource) -> dict:
    """Runs the shared study in this process; trials are coordinated by the journal."""
    report = run_study_worker(mongo.repos(), worker=worker, **config.worker_kwargs())
    return dataclasses.asdict(report)


@dg.op(description="Collect the workers' counts.")
def study_workers_done(results: list[dict]) -> dg.Output[dict]:
    """The trials each worker ran, and the study's total."""
    total = sum(r["trials_run"] for r in results)
    started, finished = min(r["started"] for r in results), max(r["finished"] for r in results)
    span = finished - started
    rate = total / span * 3600.0 if span > 0 else 0.0
    cpu = sum(r.get("cpu_seconds", 0.0) for r in results)
    return dg.Output(
        {
            "trials_run": total,
            "workers": len(results),
            "seconds": span,
            "trials_per_hour": rate,
            "cpu_seconds": cpu,
            "started": started,
            "finished": finished,
        },
        metadata={
            "trials_run": dg.MetadataValue.int(total),
            "seconds": dg.MetadataValue.float(round(span, 3)),
            "trials_per_hour": dg.MetadataValue.float(round(rate, 1)),
            "worker_cpu_seconds": dg.MetadataValue.float(round(cpu, 3)),
        },
    )


@dg.job(
    description="Optimize one study with several parallel workers (multiprocess executor).",
    tags={WORKLOAD_TAG: "optimization"},
)
def parallel_study_job() -> None:
    """Scale-out on one machine: workers in separate processes share the MongoDB journal."""
    study_workers_done(study_workers().map(study_worker).collect())
