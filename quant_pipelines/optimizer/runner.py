"""``run_study``: create or resume an Optuna study by name and optimise a strategy's parameters.

The runner never touches a database: it takes an Optuna storage (the MongoDB journal from
``storage.optuna_storage``, or None for in-memory) and a :class:`StudyRecorder` for the mirrors.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from quant_pipelines.backtest import Costs, SearchSpace
from quant_pipelines.backtest.engine import DEFAULT_COSTS
from quant_pipelines.backtest.portfolio.strategies import PortfolioStrategy
from quant_pipelines.optimizer import _hyperopt
from quant_pipelines.optimizer._mirror import Mirror
from quant_pipelines.optimizer.objectives import OBJECTIVES, Evaluation, Evaluator, prepare
from quant_pipelines.optimizer.portfolio import (
    PortfolioEvaluator,
    check_portfolio_options,
    prepare_portfolio,
    resolve_strategy,
)
from quant_pipelines.optimizer.progress import (
    ProgressClock,
    StudyRecorder,
    StudySummary,
    TrialRecord,
    summarize,
)
from quant_pipelines.optimizer.samplers import (
    HYPEROPT_ALGOS,
    PRUNERS,
    SAMPLERS,
    make_pruner,
    make_sampler,
    suggest,
)
from quant_pipelines.optimizer.statistics import (
    N_BLOCKS,
    SPA_REPS,
    StudyStatistics,
    study_statistics,
)
from quant_pipelines.optimizer.validation import Validation

_log = logging.getLogger(__name__)
ENGINES: tuple[str, ...] = ("optuna", "hyperopt")
#: Errors of one evaluation that fail the trial but not the study.
CATCH: tuple[type[Exception], ...] = (ValueError, ArithmeticError)


def constraint_values(
    space: SearchSpace, evaluation: Evaluation, *, min_trades: int
) -> dict[str, float]:
    """Constraint name -> value (feasible when <= 0): the space's, and a minimum trade count."""
    out = {
        f"{c.left} {c.op} {c.right}".replace(".", "_"): v
        for c, v in zip(space.constraints, space.violations(evaluation.params), strict=True)
    }
    if min_trades > 0:
        out["min_trades"] = float(min_trades - evaluation.is_metrics.get("n_trades", 0))
    return out


def run_study(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    strategy: str,
    study_name: str,
    n_trials: int = 100,
    timeout: float | None = None,
    objective: str = "sharpe",
    sampler: str = "tpe",
    seed: int = 0,
    engine: str = "optuna",
    storage: optuna.storages.BaseStorage | None = None,
    recorder: StudyRecorder | None = None,
    pruner: str = "median",
    validation: str | Validation = "walk_forward",
    n_folds: int = 3,
    oos_fraction: float = 0.3,
    min_trades: int = 1,
    costs: Costs = DEFAULT_COSTS,
    asset_class: str | None = None,
    periods_per_year: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    n_blocks: int = N_BLOCKS,
    spa_reps: int = SPA_REPS,
    portfolio: bool | None = None,
    portfolio_options: Mapping[str, Any] | None = None,
) -> StudySummary:
    """Optimises a strategy's parameters on in-sample bars; creates or resumes the study.

    A **portfolio study** (a name of ``PORTFOLIO_STRATEGIES``, or ``portfolio=True``) books
    the whole universe as one portfolio (:mod:`quant_pipelines.optimizer.portfolio`): its
    objective is the portfolio's metric, the split and the validation paths are on the
    union calendar of the symbols, and the study and trial documents carry
    ``"portfolio": True`` and ``"symbols"``.

    ``n_trials`` is the study's budget of done (complete or pruned) trials, shared by every
    run and worker on the study: a resumed study runs only what is left, and several workers
    on one study stop together when the budget is reached (each may finish one trial more).

    Args:
        bars: A bar frame, or symbol -> bar frame (a single-asset strategy's metrics are
            averaged over symbols; a portfolio strategy books them as one portfolio).
        strategy: Registered strategy name, single-asset or portfolio.
        study_name: Study to create, or resume when it exists in ``storage``.
        n_trials: Budget of done trials in the study.
        timeout: Seconds this call may spend optimizing (None = no limit): the run's
            wall-clock limit. No trial starts after it; the trial running then finishes
            (so none is left RUNNING), the call returns an "incomplete" summary with
            ``stopped_at_limit`` set, and a later call with the same ``study_name`` resumes
            the study until ``n_trials`` trials are done.
        objective: A key of ``OBJECTIVES``.
        sampler: Optuna: one of ``SAMPLERS``; Hyperopt: one of ``HYPEROPT_ALGOS``.
        seed: Seed of the sampler.
        engine: "optuna" or "hyperopt" (Hyperopt neither resumes nor shares a study).
        storage: Optuna storage; None for an in-memory study.
        recorder: Where study and trial documents are mirrored (None = nowhere).
        pruner: One of ``PRUNERS``; validation paths are its checkpoints.
        validation: "walk_forward", "cpcv" or "none" (the objective is then the in-sample
            value), or a :class:`Validation` with every option (folds, scheme, train_frac,
            purge, embargo, CPCV groups).
        n_folds: Walk-forward test folds when ``validation`` is a name.
        oos_fraction: Share of the bars held out of sample.
        min_trades: Trials with fewer in-sample trades are infeasible (0 disables).
        costs: Commission and slippage.
        asset_class: For annualisation and the mirrors ("equity", "crypto", "fx" ...).
        periods_per_year: Explicit annualisation.
        metadata: Extra study-document fields (partition, run id, symbols ...).
        on_progress: Called with the progress dict after every trial.
        n_blocks: CSCV blocks of the study's PBO.
        spa_reps: Bootstrap draws of the study's SPA test (seeded with ``seed``).
        portfolio: None: a portfolio study when ``strategy`` is a portfolio strategy. True:
            always (a single-asset strategy's name means ``signal_<name>``: its targets on
            every symbol, sized by an allocator). False: never.
        portfolio_options: Portfolio engine options of a portfolio study: ``rebalance``
            (default "on_change": every target the strategy decides is traded),
            ``max_gross_leverage`` (1.0), ``allow_short`` (True).

    Returns:
        The :class:`StudySummary`.

    Raises:
        ValueError: For unknown names, bad arguments, or a study of that name that was created
            for another strategy or objective.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {list(ENGINES)}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVES)}")
    algos = SAMPLERS if engine == "optuna" else HYPEROPT_ALGOS
    if sampler not in algos:
        raise ValueError(f"unknown {engine} sampler {sampler!r}; known: {list(algos)}")
    if pruner not in PRUNERS:
        raise ValueError(f"unknown pruner {pruner!r}; known: {list(PRUNERS)}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    strat = resolve_strategy(strategy, portfolio)
    space = strat.search_space()
    if isinstance(validation, str):
        validation = Validation(method=validation, n_folds=n_folds)
    evaluator: Evaluator | PortfolioEvaluator
    if isinstance(strat, PortfolioStrategy):
        universe = prepare_portfolio(
            bars,
            oos_fraction=oos_fraction,
            validation=validation,
            asset_class=asset_class,
            periods_per_year=periods_per_year,
            min_symbols=strat.min_symbols,
            who=strat.name,
        )
        evaluator = PortfolioEvaluator(
            strat,
            universe,
            objective=objective,
            costs=costs,
            **check_portfolio_options(portfolio_options),
        )
    else:
        data = prepare(
            bars,
            oos_fraction=oos_fraction,
            validation=validation,
            asset_class=asset_class,
            periods_per_year=periods_per_year,
            with_regimes=objective == "regime_robust",
        )
        evaluator = Evaluator(strat, data, objective=objective, costs=costs)
    base = evaluator.evaluate(strat.default_params())
    baseline = {
        "params": base.params,
        "values": list(base.values),
        "is_metrics": base.is_metrics,
        "oos_metrics": base.oos_metrics,
        "scores": base.scores(),
    }
    context = {
        "strategy": strat.name,
        "asset_class": asset_class,
        "objective": objective,
        "engine": engine,
        "symbols": evaluator.symbols,
        "portfolio": isinstance(evaluator, PortfolioEvaluator),
    }
    in_sample, out_of_sample = evaluator.periods()
    study_doc = {
        **context,
        **(metadata or {}),
        "space": space.to_dict(),
        "sampler": sampler,
        "seed": seed,
        "pruner": pruner,
        "n_trials": n_trials,
        "directions": ["maximize"] * len(evaluator.metrics),
        "validation": validation.to_dict(),
        "oos_fraction": oos_fraction,
        "metrics": list(evaluator.metrics),
        "baseline": baseline,
        "status": "running",
        "started_at": dt.datetime.now(dt.UTC),
        "in_sample": [_period(a, b) for a, b in in_sample],
        "out_of_sample": [_period(a, b) for a, b in out_of_sample],
    }
    if isinstance(evaluator, PortfolioEvaluator):
        study_doc["portfolio_options"] = {
            "rebalance": str(evaluator.rebalance),
            "max_gross_leverage": evaluator.max_gross_leverage,
            "allow_short": evaluator.allow_short,
        }
        study_doc["periods_per_year"] = evaluator.periods_per_year

    def statistics(records: Sequence[TrialRecord]) -> StudyStatistics:
        return study_statistics(evaluator, records, n_blocks=n_blocks, spa_reps=spa_reps, seed=seed)

    mirror = Mirror(study_name, recorder, context, on_progress, statistics)
    mirror.upsert_study(study_doc)
    try:
        if engine == "hyperopt":
            return _hyperopt.run(
                evaluator,
                space,
                study_name=study_name,
                algo=sampler,
                n_trials=n_trials,
                timeout=timeout,
                seed=seed,
                min_trades=min_trades,
                mirror=mirror,
                baseline=baseline,
                constraint_values=constraint_values,
            )
        return _run_optuna(
            evaluator,
            space,
            study_name=study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            n_trials=n_trials,
            timeout=timeout,
            min_trades=min_trades,
            mirror=mirror,
            baseline=baseline,
        )
    except BaseException:
        mirror.close()
        mirror.status("failed")
        raise


def _period(start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    return {"start": start.to_pydatetime(), "end": end.to_pydatetime()}


def _run_optuna(
    evaluator: Evaluator | PortfolioEvaluator,
    space: SearchSpace,
    *,
    study_name: str,
    storage: optuna.storages.BaseStorage | None,
    sampler: str,
    pruner: str,
    seed: int,
    n_trials: int,
    timeout: float | None,
    min_trades: int,
    mirror: Mirror,
    baseline: dict[str, Any],
) -> StudySummary:
    multi = len(evaluator.metrics) > 1
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=["maximize"] * len(evaluator.metrics),
        sampler=make_sampler(sampler, seed=seed, multi_objective=multi),
        pruner=make_pruner("none" if multi else pruner),
        load_if_exists=True,
    )
    config = {"strategy": evaluator.strategy.name, "objective": evaluator.objective}
    known = study.user_attrs.get("config")
    if known is None:
        study.set_user_attr("config", config)
        study.set_user_attr("baseline", baseline)
        # The default parameters are the first trial, so the study's best is never worse
        # than the baseline it is compared with (when they are feasible).
        study.enqueue_trial(dict(baseline["params"]), skip_if_exists=True)
    elif {k: known.get(k) for k in config} != config:
        raise ValueError(f"study {study_name!r} exists for {known}, not {config}")
    records = mirror.records(study)
    mirror.sync(records)  # a resumed study: mirror what earlier runs may have missed
    clock = ProgressClock(n_trials, mirror.done(records))
    mirror.clock = clock
    prunable = pruner != "none" and not multi
    # The MongoDB journal defers a running trial's params (``defer_trial_logs``): write them
    # as soon as they are sampled, so that a trial whose worker dies mid-evaluation is
    # re-queued with its own params (one journal write per trial, in the background while
    # the objective runs). Duck-typed: the runner does not know the storage; a no-op for
    # the others.
    flush = getattr(storage, "flush", None)

    def fn(trial: optuna.Trial) -> float | list[float]:
        params = suggest(trial, space)
        if flush is not None:
            flush(wait=False)  # before the evaluation: see flush above

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at validation step {step}")

        def partial(stats: dict[str, float]) -> None:
            # A pruned trial still counts in the DSR with the bars it was scored on; the log
            # is deferred and written with the trial's state change (no extra write).
            trial.set_user_attr("partial", stats)

        ev = evaluator.evaluate(
            params,
            report=report if prunable else None,
            partial=partial if prunable else None,
        )
        for key, value in constraint_values(space, ev, min_trades=min_trades).items():
            trial.set_constraint(key, value)
        trial.set_user_attr("is", ev.is_metrics)
        trial.set_user_attr("oos", ev.oos_metrics)
        trial.set_user_attr("scores", ev.scores())
        return list(ev.values) if multi else ev.values[0]

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        prog = mirror.after_trial(study, trial)
        if prog["done"] >= n_trials:
            study.stop()

    def settle_orphans() -> set[int]:
        """Fails the study's orphaned RUNNING trials (of dead workers) when this run stops,
        waiting a while for other live workers' trials; best effort. Duck-typed: the MongoDB
        journal's ``settle`` (leases); nothing for other storages.

        Returns:
            The numbers of the trials it failed.
        """
        settle = getattr(storage, "settle", None)
        if storage is None or settle is None:
            return set()
        try:
            failed = settle(storage.get_study_id_from_name(study_name))
            return {storage.get_trial_number_from_id(i) for i in failed}
        except Exception as exc:
            _log.warning("study %s: orphaned trials not settled: %s", study_name, exc)
            return set()

    ran_before = mirror.trials_run
    try:
        for attempt in range(4):
            left = n_trials - mirror.done(mirror.records(study))
            t_left = None if timeout is None else timeout - clock.elapsed()
            if left <= 0 or (t_left is not None and t_left <= 0):
                break
            try:
                with warnings.catch_warnings():  # CmaEsSampler warns on every constrained trial
                    warnings.filterwarnings("ignore", message="Constraints have been set")
                    study.optimize(
                        fn,
                        n_trials=left,
                        timeout=t_left,
                        callbacks=[after_trial],
                        catch=CATCH,
                        gc_after_trial=False,
                    )
                break
            except optuna.exceptions.UpdateFinishedTrialError as exc:  # our trial was reaped
                if attempt == 3:
                    raise
                _log.warning("study %s: %s; continuing", study_name, exc)
    except Exception:
        # A failed run still fails the orphaned trials and mirrors their FAIL state (best
        # effort); the exception propagates and run_study marks the study failed.
        # (Not on KeyboardInterrupt: settling may wait a lease period.)
        reaped = settle_orphans()
        if reaped:
            try:
                mirror.sync([r for r in mirror.records(study) if r.number in reaped])
            except Exception as exc:
                _log.warning("study %s: reaped trials not mirrored: %s", study_name, exc)
        raise
    # Mirror.finish below rewrites every trial whose mirrored state differs: the reaped ones.
    settle_orphans()
    records = mirror.records(study)
    summary = summarize(
        records,
        study_name=study_name,
        engine="optuna",
        objective=evaluator.objective,
        sampler=sampler,
        n_trials=n_trials,
        trials_run=mirror.trials_run - ran_before,
        clock=clock,
        baseline=baseline,
    )
    if summary.status == "completed" and any(r.state == "RUNNING" for r in records):
        # A live worker's trial still runs (settle waited for it in vain): not completed
        # while a trial runs; that worker's own end of run sets the final status.
        summary = replace(summary, status="running")
    if summary.status == "incomplete" and timeout is not None and clock.elapsed() >= timeout:
        _log.info(
            "study %s: wall-clock limit of %.0f s reached after %d of %d trials; "
            "a later run resumes it",
            study_name,
            timeout,
            summary.n_trials,
            n_trials,
        )
        summary = replace(summary, stopped_at_limit=True)
    return mirror.finish(records, summary)
