"""One study optimized by several worker processes sharing the MongoDB journal (the
multiprocess executor); each worker op calls
:func:`quant_pipelines.services.optimization.run_study_worker`."""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config parameter
# annotations of ops at definition time, and PEP 563 strings defeat it.

import dataclasses

import dagster as dg

from quant_pipelines.defs.market_data.assets import WORKLOAD_TAG
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.services.optimization import run_study_worker


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
    report = run_study_worker(
        mongo.repos(),
        worker=worker,
        **config.model_dump(exclude={"workers", "max_wall_seconds"}),
        wall_limit=float(config.max_wall_seconds) if config.max_wall_seconds > 0 else None,
    )
    return dataclasses.asdict(report)


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
