"""The study asset: one Optuna study of a strategy on an asset class, stored in the MongoDB
journal; its body calls :func:`quant_pipelines.services.optimization.run_requested_study`.

Request state is not touched here: the run-status sensors (``sensors.py``) record how the run
ended, and read ``stopped_at_wall_limit`` from this asset's metadata.
"""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config and context
# parameter annotations of assets at definition time, and PEP 563 strings defeat it.

from typing import Literal

import dagster as dg

from quant_pipelines.defs.market_data.assets import ASSET_CLASSES, WORKLOAD_TAG, market_bars_key
from quant_pipelines.defs.partitions import optimization_partitions
from quant_pipelines.defs.resources import MongoResource, UniverseResource
from quant_pipelines.optimizer import Validation
from quant_pipelines.optimizer.portfolio import is_portfolio_strategy
from quant_pipelines.services.optimization import (
    NoBarsError,
    StudyReport,
    StudySpec,
    run_requested_study,
    study_period,
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
    #: A portfolio study: every symbol of the partition's asset class (or ``symbols``) booked
    #: as one portfolio, optimizing ``portfolio_strategy`` (default: ``signal_<strategy>``,
    #: the partition's strategy on every symbol sized by an allocator).
    portfolio: bool = False
    portfolio_strategy: str = ""

    def study_strategy(self, strategy: str) -> str:
        """The strategy the study optimizes: the partition's, or the portfolio strategy."""
        if self.portfolio_strategy:
            return self.portfolio_strategy
        if self.portfolio and not is_portfolio_strategy(strategy):
            return f"signal_{strategy}"
        return strategy

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

    def to_spec(
        self, strategy: str, asset_class: str, symbols: list[str], metadata: dict
    ) -> StudySpec:
        """The service's study specification for one partition."""
        start, end = study_period(self.start, self.end, lookback_days=self.lookback_days)
        portfolio = (
            self.portfolio or bool(self.portfolio_strategy) or is_portfolio_strategy(strategy)
        )
        strategy = self.study_strategy(strategy)
        kind = "portfolio-" if portfolio else ""
        return StudySpec(
            strategy=strategy,
            asset_class=asset_class,
            symbols=list(self.symbols) or symbols,
            start=start,
            end=end,
            study_name=self.study_name or f"{strategy}-{kind}{asset_class}-{end}",
            n_trials=self.n_trials,
            validation=self.to_validation(),
            objective=self.objective,
            sampler=self.sampler,
            engine=self.engine,
            seed=self.seed,
            oos_fraction=self.oos_fraction,
            wall_limit=self.wall_limit(),
            metadata={**metadata, "request_id": self.request_id or None},
            portfolio=portfolio,
        )


def study_metadata(report: StudyReport) -> dict[str, dg.MetadataValue]:
    """The study run's materialization metadata (plotted over materializations in the UI)."""
    s, spec, stats = report.summary, report.spec, report.statistics
    return {
        "study_name": dg.MetadataValue.text(spec.study_name),
        "symbols": dg.MetadataValue.json(report.symbols),
        "period": dg.MetadataValue.text(f"{spec.start}..{spec.end}"),
        "validation": dg.MetadataValue.text(spec.validation.method),
        "strategy": dg.MetadataValue.text(spec.strategy),
        "portfolio": dg.MetadataValue.bool(spec.portfolio),
        "n_trials": dg.MetadataValue.int(s.n_trials),
        "trials_per_hour": dg.MetadataValue.float(round(s.trials_per_hour or 0.0, 1)),
        "best_validation_value": dg.MetadataValue.float(float(s.best_value or 0.0)),
        "baseline_value": dg.MetadataValue.float(float(s.baseline_value or 0.0)),
        "improvement_over_baseline": dg.MetadataValue.float(float(s.improvement or 0.0)),
        "best_params": dg.MetadataValue.json(s.best_params or {}),
        "configurations_tried": dg.MetadataValue.int(int(stats.get("n_trials_tried", 0))),
        "best_deflated_sharpe": dg.MetadataValue.float(
            round(float(s.best_deflated_sharpe or 0.0), 4)
        ),
        "pbo": dg.MetadataValue.float(round(float((stats.get("pbo") or {}).get("pbo", 1.0)), 4)),
        "spa_pvalue": dg.MetadataValue.float(
            round(float((stats.get("spa") or {}).get("pvalue", 1.0)), 4)
        ),
        "status": dg.MetadataValue.text(s.status),
        "stopped_at_wall_limit": dg.MetadataValue.bool(report.resumable),
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
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """An Optuna study of one strategy on one asset class, stored in the MongoDB journal."""
    keys = context.partition_key.keys_by_dimension
    members = [s.name for s in universe.load().by_asset_class(keys["asset_class"])]
    run = {"partition": context.partition_key, "run_id": context.run.run_id}
    spec = config.to_spec(keys["strategy"], keys["asset_class"], members, run)
    try:
        report = run_requested_study(mongo.repos(), spec)
    except NoBarsError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    return dg.MaterializeResult(metadata=study_metadata(report))
