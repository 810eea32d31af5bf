"""Backtest optimizer wiring: study runs, leaderboard, schedules and the HTTP-request sensor."""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config and context
# parameter annotations of assets at definition time, and PEP 563 strings defeat it.

import datetime as dt
from collections.abc import Callable
from typing import Literal

import dagster as dg
import pandas as pd
from pymongo.database import Database

from quant_pipelines.backtest import list_strategies
from quant_pipelines.defs import leaderboard
from quant_pipelines.defs.market_data import ASSET_CLASSES, WORKLOAD_TAG, market_bars_key
from quant_pipelines.defs.resources import MarketDataSource, MongoResource
from quant_pipelines.marketdata import is_session_open, next_session_close
from quant_pipelines.optimizer import Validation, run_study
from quant_pipelines.storage import optuna_storage, requests, studies
from quant_pipelines.storage._request_resume import requeue_unfinished
from quant_pipelines.storage.studies import StudiesRepository

#: Run priority per asset class (higher runs first); ingestion runs at 10.
ASSET_CLASS_PRIORITY = {"equity": 3, "fx": 2, "crypto": 1}
ASSET_CLASS_TAG = "quant_pipelines/asset_class"
REQUEST_TAG = "quant_pipelines/request_id"
#: The run key of a request's run: the request id, then ``<id>:resume-<n>`` for the runs that
#: resume its study after a run stopped at its wall-clock limit.
REQUEST_RUN_KEY_TAG = "quant_pipelines/request_run_key"

optimization_partitions = dg.MultiPartitionsDefinition(
    {
        "strategy": dg.StaticPartitionsDefinition(list(list_strategies())),
        "asset_class": dg.StaticPartitionsDefinition(list(ASSET_CLASSES)),
    }
)


class OptimizationConfig(dg.Config):
    """What one study run optimizes; defaults give a nightly study of the partition."""

    symbols: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    start: str = ""
    end: str = ""
    lookback_days: int = 730
    n_trials: int = 40
    sampler: str = "tpe"
    objective: str = "sharpe"
    engine: str = "optuna"
    seed: int = 0
    validation: Literal["walk_forward", "cpcv", "none"] = "walk_forward"
    n_folds: int = 3
    scheme: Literal["anchored", "rolling"] = "anchored"
    train_frac: float = 0.5
    purge: int = 0
    embargo: int = 0
    n_groups: int = 6
    n_test_groups: int = 2
    oos_fraction: float = 0.3
    timeout_s: float = 0.0
    #: Wall-clock limit of one run (seconds; 0 = none): no trial starts after it, the run
    #: ends cleanly and a request's study is resumed by a later run (see ``wall_limit``).
    max_wall_seconds: int = 7200
    study_name: str = ""
    request_id: str = ""

    def wall_limit(self) -> float | None:
        """Seconds this run may optimize: the smaller of ``timeout_s`` and
        ``max_wall_seconds`` that is set (positive); None when neither is."""
        limits = [float(x) for x in (self.timeout_s, self.max_wall_seconds) if x and x > 0]
        return min(limits) if limits else None

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


def run_tags(asset_class: str) -> dict[str, str]:
    """Tags that give a study run its asset-class priority and concurrency limits."""
    return {
        WORKLOAD_TAG: "optimization",
        ASSET_CLASS_TAG: asset_class,
        "dagster/priority": str(ASSET_CLASS_PRIORITY.get(asset_class, 0)),
    }


def _period(config: OptimizationConfig) -> tuple[str, str]:
    end = pd.Timestamp(config.end) if config.end else pd.Timestamp.now(tz="UTC").tz_localize(None)
    start = (
        pd.Timestamp(config.start)
        if config.start
        else end - pd.Timedelta(days=config.lookback_days)
    )
    return start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")


def request_progress(progress: dict, best: dict) -> dict:
    """The optimizer's progress in the request document's vocabulary."""
    return {
        "done": progress.get("trials_done"),
        "total": progress.get("n_trials"),
        "best_value": best.get("value"),
        "best_params": best.get("params"),
        "trials_per_hour": progress.get("trials_per_hour"),
        "eta_s": progress.get("eta_seconds"),
    }


@dg.asset(
    partitions_def=optimization_partitions,
    deps=[
        dg.AssetDep(market_bars_key(c), partition_mapping=dg.AllPartitionMapping())
        for c in ASSET_CLASSES
    ],
    group_name="optimization",
    kinds={"optuna", "mongodb"},
    tags={WORKLOAD_TAG: "optimization"},
    owners=["team:quant-research"],
)
def optimization_study(
    context: dg.AssetExecutionContext,
    config: OptimizationConfig,
    mongo: MongoResource,
    market_data: MarketDataSource,
) -> dg.MaterializeResult:
    """An Optuna study of one strategy on one asset class, stored in the MongoDB journal."""
    keys = context.partition_key.keys_by_dimension
    strategy, asset_class = keys["strategy"], keys["asset_class"]
    db = mongo.get_db()
    start, end = _period(config)
    symbols = list(config.symbols) or [
        s.name for s in market_data.universe.by_asset_class(asset_class)
    ]
    study_name = config.study_name or f"{strategy}-{asset_class}-{end}"
    run_id = context.run.run_id
    if config.request_id:
        requests.mark_launched(db, config.request_id, run_id)

    def report(progress: dict) -> None:
        if config.request_id:
            best = (studies.get_study(db, study_name) or {}).get("best") or {}
            requests.update_status(
                db, config.request_id, requests.RUNNING, progress=request_progress(progress, best)
            )

    bars = {s: b for s, b in mongo.bars().read_many(symbols, start, end).items() if len(b)}
    storage = optuna_storage(db) if config.engine == "optuna" else None
    try:
        if not bars:
            raise dg.Failure(
                description=f"no bars in MongoDB for {symbols} between {start} and {end}; "
                f"materialize market_bars/{asset_class} for that period first",
                allow_retries=False,
            )
        summary = run_study(
            bars,
            strategy=strategy,
            study_name=study_name,
            n_trials=config.n_trials,
            timeout=config.wall_limit(),
            objective=config.objective,
            sampler=config.sampler,
            seed=config.seed,
            engine=config.engine,
            storage=storage,
            recorder=StudiesRepository(db),
            validation=config.to_validation(),
            oos_fraction=config.oos_fraction,
            asset_class=asset_class,
            metadata={
                "partition": context.partition_key,
                "run_id": run_id,
                "request_id": config.request_id or None,
                "start": start,
                "end": end,
            },
            on_progress=report,
        )
    except Exception as exc:
        if config.request_id:
            requests.update_status(db, config.request_id, requests.FAILED, error=str(exc)[:500])
        raise
    finally:
        if storage is not None:
            storage.close()  # stops the lease thread of this run
    resumable = summary.stopped_at_limit and summary.trials_run > 0 and config.engine == "optuna"
    if resumable:
        context.log.info(
            f"study {study_name}: wall-clock limit of {config.wall_limit():.0f} s reached "
            f"with {summary.n_trials}/{config.n_trials} trials done; a later run resumes it"
        )
    if config.request_id:
        final = {
            "done": summary.n_trials,
            "total": config.n_trials,
            "best_value": summary.best_value,
            "best_params": summary.best_params,
            "trials_per_hour": summary.trials_per_hour,
            "eta_s": 0.0,
        }
        if resumable:
            # Not failed, not done: back in the queue (due now, progress kept); the request
            # sensor launches a run that resumes the study by name.
            final["eta_s"] = None
            requeue_unfinished(
                db,
                config.request_id,
                run_id,
                progress=final,
                reason=f"wall-clock limit of {config.wall_limit():.0f} s reached; "
                f"{summary.n_trials}/{config.n_trials} trials done",
            )
        else:
            requests.update_status(db, config.request_id, requests.SUCCEEDED, progress=final)
    stats = summary.statistics or {}
    return dg.MaterializeResult(
        metadata={
            "study_name": dg.MetadataValue.text(study_name),
            "symbols": dg.MetadataValue.json(sorted(bars)),
            "period": dg.MetadataValue.text(f"{start}..{end}"),
            "validation": dg.MetadataValue.text(config.validation),
            "n_trials": dg.MetadataValue.int(summary.n_trials),
            "trials_per_hour": dg.MetadataValue.float(round(summary.trials_per_hour or 0.0, 1)),
            "best_validation_value": dg.MetadataValue.float(float(summary.best_value or 0.0)),
            "baseline_value": dg.MetadataValue.float(float(summary.baseline_value or 0.0)),
            "improvement_over_baseline": dg.MetadataValue.float(float(summary.improvement or 0.0)),
            "best_params": dg.MetadataValue.json(summary.best_params or {}),
            "configurations_tried": dg.MetadataValue.int(int(stats.get("n_trials_tried", 0))),
            "best_deflated_sharpe": dg.MetadataValue.float(
                round(float(summary.best_deflated_sharpe or 0.0), 4)
            ),
            "pbo": dg.MetadataValue.float(
                round(float((stats.get("pbo") or {}).get("pbo", 1.0)), 4)
            ),
            "spa_pvalue": dg.MetadataValue.float(
                round(float((stats.get("spa") or {}).get("pvalue", 1.0)), 4)
            ),
            "status": dg.MetadataValue.text(summary.status),
            "stopped_at_wall_limit": dg.MetadataValue.bool(bool(summary.stopped_at_limit)),
        }
    )


optimize_strategy_job = dg.define_asset_job(
    name="optimize_strategy_job",
    selection=dg.AssetSelection.assets(optimization_study),
    tags={WORKLOAD_TAG: "optimization"},
    description="Run an Optuna study for one (strategy, asset class) partition.",
)


def _partition_requests(asset_classes: tuple[str, ...], day: str) -> list[dg.RunRequest]:
    return [
        dg.RunRequest(
            run_key=f"nightly:{strategy}:{asset_class}:{day}",
            partition_key=dg.MultiPartitionKey({"strategy": strategy, "asset_class": asset_class}),
            tags=run_tags(asset_class),
        )
        for asset_class in asset_classes
        for strategy in list_strategies()
    ]


@dg.schedule(
    name="nightly_optimization_schedule",
    cron_schedule="0 21 * * 1-5",
    execution_timezone="America/New_York",
    job=optimize_strategy_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Equity and FX studies at 21:00 New York on weekdays, after the close.",
)
def nightly_optimization_schedule(context: dg.ScheduleEvaluationContext):
    """Launches one study per (strategy, equity|fx) outside the NYSE session."""
    when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    return _partition_requests(("equity", "fx"), when.date().isoformat())


@dg.schedule(
    name="crypto_optimization_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone="America/New_York",
    job=optimize_strategy_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Crypto studies at 02:00 New York every day: their own window, off-session.",
)
def crypto_optimization_schedule(context: dg.ScheduleEvaluationContext):
    """Launches one study per (strategy, crypto) in the small hours, New York time."""
    when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    return _partition_requests(("crypto",), when.date().isoformat())


def request_run_config(request: dict) -> dict:
    """Run config of the study run that serves an HTTP optimization request.

    Every validation option of the request reaches the run: ``walk_forward: false`` means no
    folds (``validation: none``), an object sets ``n_folds``, ``scheme``, ``train_frac`` and
    ``purge``, and ``validation: cpcv`` with its ``cpcv`` options selects CPCV.
    """
    params = request["params"]
    wf = params.get("walk_forward")
    config: dict = {
        "symbols": list(params["symbols"]),
        "start": params["start"],
        "end": params["end"],
        "n_trials": int(params["n_trials"]),
        "sampler": params["sampler"],
        "objective": params["objective"],
        "seed": int(params["seed"]),
        "study_name": request["study_name"],
        "request_id": request["request_id"],
    }
    method = params.get("validation") or ("walk_forward" if wf else "none")
    config["validation"] = method
    if isinstance(wf, dict):
        for key in ("n_folds", "scheme", "train_frac", "purge"):
            if key in wf:
                config[key] = wf[key]
    cpcv = params.get("cpcv")
    if method == "cpcv" and isinstance(cpcv, dict):
        for key in ("n_groups", "n_test_groups", "purge", "embargo"):
            if key in cpcv:
                config[key] = cpcv[key]
    return {"ops": {"optimization_study": {"config": config}}}


def request_run_key(request: dict) -> str:
    """The run key of a request's next run: its id, or ``<id>:resume-<n>`` after n resumes."""
    resumes = int(request.get("resumes") or 0)
    request_id = request["request_id"]
    return request_id if resumes == 0 else f"{request_id}:resume-{resumes}"


def plan_request_runs(
    db: Database,
    *,
    now: pd.Timestamp,
    already_launched: Callable[[str], bool] = lambda _run_key: False,
    log: Callable[[str], None] = lambda _msg: None,
) -> list[dg.RunRequest]:
    """Run requests for the pending HTTP requests; market-hours ones are deferred.

    Args:
        db: The project database.
        now: The evaluation time (UTC).
        already_launched: Whether a run already exists for a run key (the request id for a
            request's first run, ``<id>:resume-<n>`` for the runs resuming its study).
        log: Where deferrals are reported.

    Returns:
        One run request per launchable request, keyed by :func:`request_run_key`.
    """
    market_open = is_session_open("XNYS", now)
    planned = []
    for request in requests.pending_requests(db, now=now.to_pydatetime()):
        request_id = request["request_id"]
        run_key = request_run_key(request)
        if already_launched(run_key):
            continue
        if market_open and not request.get("urgent"):
            until = next_session_close("XNYS", now).to_pydatetime()
            requests.mark_deferred(
                db, request_id, until, reason="market hours", now=now.to_pydatetime()
            )
            log(f"request {request_id} deferred to {until.isoformat()} (market hours)")
            continue
        asset_class = (request.get("asset_classes") or ["equity"])[0]
        planned.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=dg.MultiPartitionKey(
                    {"strategy": request["params"]["strategy"], "asset_class": asset_class}
                ),
                run_config=request_run_config(request),
                tags={
                    **run_tags(asset_class),
                    REQUEST_TAG: request_id,
                    REQUEST_RUN_KEY_TAG: run_key,
                },
            )
        )
    return planned


@dg.sensor(
    name="optimization_request_sensor",
    job=optimize_strategy_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launch one study run per pending POST /backtests/optimize request.",
)
def optimization_request_sensor(context: dg.SensorEvaluationContext, mongo: MongoResource):
    """One run per request (the run key is the request id); market-hours requests wait."""

    def already_launched(run_key: str) -> bool:
        # A request's first run is found by its request tag (runs launched before the
        # run-key tag existed have only that one); a resuming run by its run-key tag.
        tag = REQUEST_RUN_KEY_TAG if ":resume-" in run_key else REQUEST_TAG
        runs = context.instance.get_run_records(filters=dg.RunsFilter(tags={tag: run_key}), limit=1)
        return bool(runs)

    planned = plan_request_runs(
        mongo.get_db(),
        now=pd.Timestamp.now(tz="UTC"),
        already_launched=already_launched,
        log=context.log.info,
    )
    return planned or dg.SkipReason("no pending optimization requests")


class ParallelStudyConfig(dg.Config):
    """One study optimized by several worker processes sharing the MongoDB journal."""

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


@dg.op(out=dg.DynamicOut(int), description="Fan the study out to its workers.")
def study_workers(config: ParallelStudyConfig):
    """One dynamic output per worker."""
    for worker in range(config.workers):
        yield dg.DynamicOutput(worker, mapping_key=f"w{worker}")


@dg.op(description="A worker: optimizes the shared study until its trial budget is spent.")
def study_worker(worker: int, config: ParallelStudyConfig, mongo: MongoResource) -> dict:
    """Runs the shared study in this process; trials are coordinated by the journal."""
    db = mongo.get_db()
    bars = {
        s: b
        for s, b in mongo.bars().read_many(config.symbols, config.start, config.end).items()
        if len(b)
    }
    storage = optuna_storage(db)
    started = dt.datetime.now(dt.UTC)
    try:
        summary = run_study(
            bars,
            strategy=config.strategy,
            study_name=config.study_name,
            n_trials=config.n_trials,
            sampler=config.sampler,
            seed=config.seed + worker,  # each worker samples its own stream
            timeout=float(config.max_wall_seconds) if config.max_wall_seconds > 0 else None,
            storage=storage,
            recorder=StudiesRepository(db),
            asset_class=config.asset_class,
        )
    finally:
        storage.close()
    return {
        "worker": worker,
        "trials_run": summary.trials_run,
        "n_trials": summary.n_trials,
        "started": started.timestamp(),
        "finished": dt.datetime.now(dt.UTC).timestamp(),
    }


@dg.op(description="Collect the workers' counts.")
def study_workers_done(results: list[dict]) -> dg.Output[dict]:
    """The trials each worker ran, and the study's total."""
    total = sum(r["trials_run"] for r in results)
    span = max(r["finished"] for r in results) - min(r["started"] for r in results)
    rate = total / span * 3600.0 if span > 0 else 0.0
    return dg.Output(
        {"trials_run": total, "workers": len(results), "seconds": span, "trials_per_hour": rate},
        metadata={
            "trials_run": dg.MetadataValue.int(total),
            "seconds": dg.MetadataValue.float(round(span, 3)),
            "trials_per_hour": dg.MetadataValue.float(round(rate, 1)),
        },
    )


@dg.job(
    description="Optimize one study with several parallel workers (multiprocess executor).",
    tags={WORKLOAD_TAG: "optimization"},
)
def parallel_study_job() -> None:
    """Scale-out on one machine: workers in separate processes share the MongoDB journal."""
    study_workers_done(study_workers().map(study_worker).collect())


def build_defs() -> dg.Definitions:
    """Definitions of the optimization area."""
    return dg.Definitions(
        assets=[optimization_study, leaderboard.optimization_leaderboard],
        asset_checks=[leaderboard.promoted_rows_pass_overfitting_tests],
        jobs=[optimize_strategy_job, leaderboard.optimization_leaderboard_job, parallel_study_job],
        schedules=[
            nightly_optimization_schedule,
            crypto_optimization_schedule,
            leaderboard.nightly_leaderboard_schedule,
        ],
        sensors=[optimization_request_sensor],
    )
