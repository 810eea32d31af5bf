"""Assets of the data-quality sentinel: scores beside the bars, models, thresholds, dashboard.

Each asset calls a use case of :mod:`quant_pipelines.services.quality` (or
:mod:`~quant_pipelines.services.calibration`) and turns its report into metadata.
"""

# No `from __future__ import annotations`: Dagster 1.13 resolves the Config parameter's
# annotation at definition time, and a PEP 563 string defeats it.

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from quant_pipelines.defs.market_data.assets import ASSET_CLASSES, WORKLOAD_TAG
from quant_pipelines.defs.market_data.assets import market_bars_key as bars_key
from quant_pipelines.defs.partitions import trading_day_partitions
from quant_pipelines.defs.quality import checks
from quant_pipelines.defs.quality._metadata import (
    dashboard_metadata,
    scores_metadata,
    thresholds_metadata,
)
from quant_pipelines.defs.resources import MongoResource, UniverseResource
from quant_pipelines.services import calibration
from quant_pipelines.services import quality as service

#: Scores run once their bars partition updated and every blocking check of the bars passed.
SCORES_AUTOMATION = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager_after_blocking_checks")
#: The dashboard refreshes each weekday evening once every class's scores updated after 20:00
#: New York (the ingestion runs at 20:30).
DASHBOARD_AUTOMATION = dg.AutomationCondition.on_cron(
    "0 20 * * 1-5", cron_timezone="America/New_York"
)
SEED = service.SEED


def scores_key(asset_class: str) -> dg.AssetKey:
    """Asset key of the anomaly scores of one asset class."""
    return dg.AssetKey(["bar_anomaly_scores", asset_class])


def build_scores_asset(asset_class: str) -> dg.AssetsDefinition:
    """Anomaly scores of one asset class, with the same partitions as its bars."""
    key = scores_key(asset_class)

    @dg.asset(
        key=key,
        deps=[bars_key(asset_class)],
        partitions_def=trading_day_partitions(asset_class),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=SCORES_AUTOMATION,
        pool="mongo_bulk",
        group_name="quality",
        kinds={"scikitlearn", "mongodb"},
        tags={WORKLOAD_TAG: "ingestion"},
        owners=["team:data-engineering"],
        check_specs=checks.scores_check_specs(key),
        description=f"Isolation Forest and Prophet scores of the {asset_class} bars.",
    )
    def _scores(
        context: dg.AssetExecutionContext, mongo: MongoResource, universe: UniverseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Flags suspicious bars of the batch before analysts and models consume them."""
        keys, window = context.partition_key_range, context.partition_time_window
        report = service.score_partition(
            mongo.repos(),
            universe.load(),
            asset_class,
            start=pd.Timestamp(window.start),
            end=pd.Timestamp(window.end),
            batch_id=service.scores_batch_id(asset_class, keys.start, keys.end),
        )
        yield dg.MaterializeResult(metadata=scores_metadata(report))
        yield checks.anomaly_rate_within_threshold(key, report)
        yield checks.no_critical_anomalies(key, report)

    return _scores


equity_bar_anomaly_scores = build_scores_asset("equity")
fx_bar_anomaly_scores = build_scores_asset("fx")
crypto_bar_anomaly_scores = build_scores_asset("crypto")


class QualityModelsConfig(dg.Config):
    """Training window of the weekly refits."""

    history_days: int = 730
    calibration_bars: int = 120


@dg.asset(
    deps=[bars_key(c) for c in ASSET_CLASSES],
    group_name="quality",
    kinds={"prophet", "mongodb"},
    owners=["team:data-engineering"],
)
def prophet_models(
    config: QualityModelsConfig, mongo: MongoResource, universe: UniverseResource
) -> dg.MaterializeResult:
    """Weekly Prophet fits per symbol, so scoring follows each market's trend and seasonality."""
    report = calibration.refit_quality_models(
        mongo.repos(), universe.load(), history_days=config.history_days, seed=SEED
    )
    return dg.MaterializeResult(
        metadata={
            "version": dg.MetadataValue.text(report.version),
            "symbols_fitted": dg.MetadataValue.int(len(report.fitted)),
            "skipped": dg.MetadataValue.json(report.skipped),
        }
    )


@dg.asset(
    deps=[prophet_models],
    group_name="quality",
    kinds={"scikitlearn", "mongodb"},
    owners=["team:data-engineering"],
)
def anomaly_thresholds(
    config: QualityModelsConfig, mongo: MongoResource, universe: UniverseResource
) -> dg.MaterializeResult:
    """Thresholds recalibrated weekly on clean history, so alert rates meet their targets."""
    try:
        update = calibration.calibrate_and_store(
            mongo.repos(),
            universe.load(),
            history_days=config.history_days,
            calibration_bars=config.calibration_bars,
            seed=SEED,
        )
    except ValueError as exc:
        raise dg.Failure(description=f"cannot calibrate thresholds: {exc}") from exc
    return dg.MaterializeResult(metadata=thresholds_metadata(update))


@dg.asset(
    deps=[scores_key(c) for c in ASSET_CLASSES],
    automation_condition=DASHBOARD_AUTOMATION,
    group_name="quality",
    kinds={"mongodb"},
    owners=["team:data-engineering"],
)
def anomaly_dashboard(mongo: MongoResource) -> dg.MaterializeResult:
    """Anomaly counts, resolution times and false-positive rate, for the dashboard and KPIs."""
    report = service.anomaly_dashboard(mongo.repos())
    return dg.MaterializeResult(metadata=dashboard_metadata(report))
