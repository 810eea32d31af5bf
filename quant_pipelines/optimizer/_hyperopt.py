"""The Hyperopt engine behind ``run_study(engine="hyperopt")``: TPE, annealing or random search.

It scores parameters with the same evaluator and writes the same ``studies`` / ``trials``
mirrors as the Optuna engine, but keeps its trials in memory: it neither resumes a study nor
shares one between workers. Re-running a study name with the same seed repeats the same trials
and overwrites their mirrors with identical documents.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np

from quant_pipelines.backtest import SearchSpace
from quant_pipelines.optimizer._mirror import Mirror
from quant_pipelines.optimizer.objectives import Evaluation, Evaluator
from quant_pipelines.optimizer.progress import ProgressClock, StudySummary, TrialRecord, summarize
from quant_pipelines.optimizer.samplers import coerce, hyperopt_space

#: Errors of one evaluation that fail the trial but not the study.
_CATCH: tuple[type[Exception], ...] = (ValueError, ArithmeticError)


def run(
    evaluator: Evaluator,
    space: SearchSpace,
    *,
    study_name: str,
    algo: str,
    n_trials: int,
    timeout: float | None,
    seed: int,
    min_trades: int,
    mirror: Mirror,
    baseline: dict[str, Any],
    constraint_values: Callable[..., dict[str, float]],
) -> StudySummary:
    """Runs ``n_trials`` Hyperopt evaluations and mirrors each one.

    Raises:
        ValueError: For a multi-objective objective (Hyperopt minimises one loss).
    """
    if len(evaluator.metrics) > 1:
        raise ValueError("engine='hyperopt' is single-objective; use engine='optuna'")
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials, anneal, rand, tpe
    from hyperopt import fmin as _fmin
    from hyperopt.exceptions import AllTrialsFailed

    suggest = {"tpe": tpe.suggest, "anneal": anneal.suggest, "random": rand.suggest}[algo]
    records: list[TrialRecord] = []
    mirror.clock = clock = ProgressClock(n_trials, 0)

    def fn(raw: dict[str, Any]) -> dict[str, Any]:
        params = coerce(space, raw)
        start = dt.datetime.now(dt.UTC)
        try:
            ev: Evaluation | None = evaluator.evaluate(params)
        except _CATCH:
            ev = None
        end = dt.datetime.now(dt.UTC)
        if ev is None:
            rec = TrialRecord(len(records), "FAIL", params, start=start, complete=end)
        else:
            rec = TrialRecord(
                len(records),
                "COMPLETE",
                params,
                values=list(ev.values),
                is_metrics=ev.is_metrics,
                oos_metrics=ev.oos_metrics,
                constraints=constraint_values(space, ev, min_trades=min_trades),
                start=start,
                complete=end,
                scores=ev.scores(),
            )
        records.append(rec)
        mirror.trial_done(rec, records)
        if ev is None or not rec.feasible:
            return {"status": STATUS_FAIL, "loss": None}
        return {"status": STATUS_OK, "loss": -ev.values[0]}

    with contextlib.suppress(AllTrialsFailed):  # none feasible: the summary says so
        _fmin(
            fn,
            hyperopt_space(space),
            algo=suggest,
            max_evals=n_trials,
            trials=Trials(),
            rstate=np.random.default_rng(seed),
            timeout=timeout,
            show_progressbar=False,
        )
    summary = summarize(
        records,
        study_name=study_name,
        engine="hyperopt",
        objective=evaluator.objective,
        sampler=algo,
        n_trials=n_trials,
        trials_run=len(records),
        clock=clock,
        baseline=baseline,
    )
    return mirror.finish(records, summary)
