"""Scale-out on one machine: one study optimized by 1 and then 2 parallel workers.

Every study runs on one private embedded MongoDB server and one set of bars, the 1-worker
reference next to the 2-worker run. A rate is taken over the study's **trial phase** (first
trial's start to last trial's end, from the trial documents): the throughput scale-out is for.
The **whole-run** rows (the collector's rate, first worker's start to last worker's end) add
each worker's fixed costs: reading the bars, the baseline, the end-of-run statistics.

Cases, by cost of one trial (SMA crossover, TPE, seed 11): ~5 ms, 1 symbol x ~5,000 daily
bars, 3 walk-forward folds (sampling and journal round-trips dominate); ~20 and ~50 ms, 4
symbols x 20,000 hourly bars with 3 folds or CPCV 10/3 (36 paths), no pruning; these run the
job's worker (``run_study_worker``) in 2 pre-started processes (Dagster's process start-up is
outside the phase anyway). ~200 ms: ``parallel_study_job`` itself with CPCV 12/4 (165
paths), no pruning: goal 1.6x with 2 workers on 2 cores.

Each row gives the embedded server's CPU during the 2-worker phase (psutil, every 50 ms) as
a share of one core. The **ceiling** row scores the goal case's objective alone in 1 and 2
processes: what the 2 cores gave 2 workers at that moment (on a shared machine it can be far
below 2, and the goal with it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any

import dagster as dg
import optuna

from quant_pipelines.bench._report import Figure
from quant_pipelines.bench._scaleout_env import (
    DAILY,
    DB,
    HOURLY,
    CpuClock,
    bench_server,
    objective_alone,
    trial_phase,
)
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import make_client

#: Speed-up of 2 workers over 1 on the objective-bound study (2 cores).
GOAL = 1.6

#: Shown under the report by ``bench.runner``.
NOTES = (
    "Scale-out pays when the cores are free for it. A trial costs its objective plus a few ms "
    "of sampling and journal round-trips, and the embedded MongoDB server is a third process "
    "on the same 2 cores: on an idle machine the trial phase scaled 1.5-2x at every trial cost "
    "measured (19-305 ms), but on a shared machine 2 workers of a study below ~50 ms per trial "
    "contend for the cores and the server and run slower than 1; from ~50 ms per trial "
    "(several symbols, long histories, CPCV paths) the objective dominates. The whole-run rows "
    "add each worker's fixed costs (bars, baseline, end-of-run statistics), which do not "
    "shrink with more workers. See docs/runbook.md, 'Parallel study workers'."
)


@dataclass(frozen=True)
class Case:
    """One study measured with 1 and 2 workers.

    Attributes:
        label: What the study is, for the figure names.
        n_trials: The study's budget.
        config: ``ParallelStudyConfig`` fields over :func:`base_config`.
        dagster: Run through ``parallel_study_job`` (else the worker in pool processes).
        goal: Minimum speed-up of 2 workers over 1 (None: no goal).
    """

    label: str
    n_trials: int
    config: dict[str, Any] = field(default_factory=dict)
    dagster: bool = False
    goal: float | None = None


def _hourly(symbols: int, validation: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbols": list(HOURLY[:symbols]),
        "asset_class": "crypto",
        "periods_per_year": 8760.0,
        "pruner": "none",  # every trial scores every path: a known cost per trial
        **validation,
    }


_WF = {"validation": "walk_forward", "n_folds": 3}
CASES = (
    Case("1 symbol x ~5,000 daily bars, 3 folds", 400),
    Case("4 symbols x 20,000 hourly bars, 3 folds", 120, _hourly(4, _WF)),
    Case(
        "4 symbols x 20,000 hourly bars, CPCV 10/3 (36 paths)",
        80,
        _hourly(4, {"validation": "cpcv", "n_groups": 10, "n_test_groups": 3}),
    ),
    Case(
        "4 symbols x 20,000 hourly bars, CPCV 12/4 (165 paths)",
        80,
        _hourly(4, {"validation": "cpcv", "n_groups": 12, "n_test_groups": 4}),
        dagster=True,
        goal=GOAL,
    ),
)
QUICK = (
    Case("1 symbol x 3,000 hourly bars, 3 folds", 40, _hourly(1, _WF)),
    Case(
        "2 symbols x 3,000 hourly bars, CPCV 8/3 (21 paths)",
        16,
        _hourly(2, {"validation": "cpcv", "n_groups": 8, "n_test_groups": 3}),
    ),
)


def base_config(study_name: str, workers: int, n_trials: int) -> dict[str, Any]:
    """The ``ParallelStudyConfig`` of a bench study before its case's fields."""
    return {
        "study_name": study_name,
        "strategy": "sma_crossover",
        "symbols": [DAILY],
        "start": "2000-01-01",
        "end": "2030-01-01",
        "n_trials": n_trials,
        "workers": workers,
        "seed": 11,
    }


def run_parallel_study(
    instance: dg.DagsterInstance,
    *,
    study_name: str,
    workers: int,
    n_trials: int,
    config: Mapping[str, Any] | None = None,
) -> dict:
    """Runs ``parallel_study_job`` with the multiprocess executor; returns the collector output.

    Args:
        instance: The Dagster instance.
        study_name: The study.
        workers: Worker processes.
        n_trials: The study's budget.
        config: ``ParallelStudyConfig`` fields over :func:`base_config`.
    """
    from quant_pipelines.definitions import parallel_study_job_def

    run_config = base_config(study_name, workers, n_trials) | dict(config or {})
    ops = {name: {"config": run_config} for name in ("study_workers", "study_worker")}
    with dg.execute_job(
        dg.reconstructable(parallel_study_job_def), instance=instance, run_config={"ops": ops}
    ) as result:
        if not result.success:
            raise RuntimeError(f"parallel_study_job failed (run {result.run_id})")
        return result.output_for_node("study_workers_done")


def _pool_worker(uri: str, worker: int, config: dict[str, Any]) -> dict[str, Any]:
    """One worker of a study in a pool process: the job's worker op without Dagster; with
    ``worker < 0``, a warm-up (imports and the backtest kernel) that holds the process 1 s."""
    from quant_pipelines.defs.optimization.parallel import ParallelStudyConfig
    from quant_pipelines.services.optimization import run_study_worker
    from quant_pipelines.storage.repositories import Repositories

    if worker < 0:
        from quant_pipelines.backtest import run_backtest

        bars = SyntheticSource(seed=0).bars(DAILY, "2020-01-01", "2021-01-01")
        run_backtest(bars, [1.0] * len(bars))
        time.sleep(1.0)  # so that the other warm-up starts the pool's second process
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    c = ParallelStudyConfig(**config)
    c.check()
    client = make_client(uri)
    try:
        report = run_study_worker(Repositories.over(client[DB]), worker=worker, **c.worker_kwargs())
    finally:
        client.close()
    return asdict(report)


def _study(case: Case, instance: Any, pool: ProcessPoolExecutor, uri: str) -> Callable:
    """``go(study_name, workers)``: runs the case's study through its harness."""

    def go(name: str, workers: int) -> dict:
        if case.dagster:
            return run_parallel_study(
                instance,
                study_name=name,
                workers=workers,
                n_trials=case.n_trials,
                config=case.config,
            )
        config = base_config(name, workers, case.n_trials) | case.config
        calls = [pool.submit(_pool_worker, uri, w, config) for w in range(workers)]
        reports = [call.result() for call in calls]
        span = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
        return {"trials_per_hour": sum(r["trials_run"] for r in reports) / span * 3600.0}

    return go


def _measure(
    case: Case,
    go: Callable[[str, int], dict],
    db: Any,
    clock: CpuClock,
    *,
    tag: str,
    two_first: bool,
) -> list[Figure]:
    """The case with 1 and 2 workers, in the order given: its figures."""
    runs: dict[int, dict] = {}
    phases: dict[int, dict] = {}
    for workers in (2, 1) if two_first else (1, 2):
        name = f"{tag}-w{workers}"
        runs[workers], phases[workers] = go(name, workers), trial_phase(db, name, case.n_trials)
    one, two = phases[1], phases[2]
    server = clock.between(two["start"], two["end"]) / (two["end"] - two["start"])
    how = "parallel_study_job" if case.dagster else "run_study_worker in 2 processes"
    return [
        Figure(
            "optimizer",
            f"2 workers, trial phase: {case.label} ({case.n_trials} trials, "
            f"{1e3 / one['rate']:,.0f} ms per trial; {how}; server CPU {server:.0%} of a core)",
            two["rate"] * 3600.0,
            "trials/h",
            "the same study with 1 worker",
            one["rate"] * 3600.0,
            goal=case.goal,
        ),
        Figure(
            "optimizer",
            f"2 workers, whole run (each worker's bars, baseline, statistics): {case.label}",
            runs[2]["trials_per_hour"],
            "trials/h",
            "the same study with 1 worker",
            runs[1]["trials_per_hour"],
        ),
    ]


def _ceiling(pool: ProcessPoolExecutor, case: Case, n: int = 20) -> Figure:
    """The case's objective alone in 1 and 2 pool processes (best of 2 each, interleaved):
    what the machine allows 2 workers at that moment, whatever the study's overheads."""
    config = base_config("ceiling", 2, case.n_trials) | case.config
    for warm in [pool.submit(objective_alone, config, 20_000, 0, 0.0) for _ in range(2)]:
        warm.result()
    rates: dict[int, float] = {}
    for procs in (1, 2, 2, 1):
        start_at = time.time() + 1.0
        calls = [pool.submit(objective_alone, config, 20_000, n, start_at) for _ in range(procs)]
        spans = [call.result() for call in calls]
        rate = procs * n / (max(e for _, e in spans) - min(s for s, _ in spans))
        rates[procs] = max(rates.get(procs, 0.0), rate)
    return Figure(
        "optimizer",
        f"ceiling: the objective alone in 2 processes, no Optuna, no database ({case.label})",
        rates[2],
        "evals/s",
        "the same in 1 process (what 2 cores give 2 workers at that moment)",
        rates[1],
    )


def run(*, quick: bool = False) -> list[Figure]:
    """Speed-up of 2 workers over 1 on one study, by cost of a trial (module doc).

    Args:
        quick: Small bars, two cases, no Dagster run (seconds: a smoke test).
    """
    figures: list[Figure] = []
    with bench_server(quick) as (server, db), ExitStack() as stack:
        clock = CpuClock(server.status().pid or os.getpid())
        stack.callback(clock.close)
        instance = None if quick else stack.enter_context(dg.DagsterInstance.get())
        pool = stack.enter_context(ProcessPoolExecutor(2, mp_context=get_context("spawn")))
        for warm in [pool.submit(_pool_worker, "", -1, {}) for _ in range(2)]:
            warm.result()
        for i, case in enumerate(QUICK if quick else CASES):
            go = _study(case, instance, pool, server.uri)
            figures += _measure(case, go, db, clock, tag=f"case{i}", two_first=i % 2 == 1)
            if case.goal is not None:
                figures.append(_ceiling(pool, case))
    return figures


if __name__ == "__main__":
    from quant_pipelines.bench._report import render_markdown

    print(render_markdown(run(quick=True)))
