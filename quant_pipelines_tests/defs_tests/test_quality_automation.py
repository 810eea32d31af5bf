"""Declarative automation of the sentinel: scores follow their bars only past the gates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from quant_pipelines.defs.market_data.assets import crypto_market_bars
from quant_pipelines.defs.quality.assets import crypto_bar_anomaly_scores
from quant_pipelines.defs.resources import MarketDataSource, MongoResource, UniverseResource
from quant_pipelines.marketdata import SyntheticSource

pytestmark = pytest.mark.slow

#: A closed crypto session, evaluated as of its last hour: the partitions include the current
#: day, so DAY is then the latest time window, the only one eager updates.
DAY = "2024-06-11"
EVALUATED_AT = dt.datetime(2024, 6, 11, 23, 30, tzinfo=dt.UTC)
SCORES_KEY = crypto_bar_anomaly_scores.key


def _defs(resources: dict[str, object], *, eager_only: bool = False) -> dg.Definitions:
    scores = crypto_bar_anomaly_scores
    if eager_only:  # the control: the same asset without the blocking-checks gate
        eager = dg.AutomationCondition.eager()
        scores = scores.map_asset_specs(lambda s: s.replace_attributes(automation_condition=eager))
    return dg.Definitions(assets=[crypto_market_bars, scores], resources=resources)


def _evaluate(defs: dg.Definitions, instance: dg.DagsterInstance, cursor=None):
    return dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=EVALUATED_AT, cursor=cursor
    )


def _ingest_and_evaluate(
    resources: dict[str, object],
) -> tuple[dg.ExecuteInProcessResult, set[str], set[str]]:
    """Evaluates once (the initial tick), ingests DAY's bars, evaluates again.

    Returns:
        The ingestion, the scores partitions requested by the production condition, and
        those plain ``eager()`` requests (the control).
    """
    both = (_defs(resources), _defs(resources, eager_only=True))  # production, control
    with dg.instance_for_test() as instance:
        first = [_evaluate(d, instance) for d in both]
        assert all(r.total_requested == 0 for r in first)  # nothing updated yet
        ingest = dg.materialize(
            [crypto_market_bars],
            instance=instance,
            resources=resources,
            partition_key=DAY,
            raise_on_error=False,
        )
        second = [_evaluate(d, instance, cursor=r.cursor) for d, r in zip(both, first, strict=True)]
        production, control = (set(r.get_requested_partitions(SCORES_KEY)) for r in second)
        return ingest, production, control


def _resources(mongo: MongoResource, universe: Path, source: MarketDataSource) -> dict:
    return {"mongo": mongo, "universe": UniverseResource(path=str(universe)), "market_data": source}


def test_scores_are_requested_when_their_bars_partition_passes_the_blocking_checks(
    mongo_resource: MongoResource, small_universe: Path
) -> None:
    source = MarketDataSource(kind="synthetic", seed=11, universe_path=str(small_universe))
    ingest, requested, _ = _ingest_and_evaluate(_resources(mongo_resource, small_universe, source))
    assert ingest.success
    blocking = {"bars_have_valid_ohlc", "bars_have_no_duplicates"}
    passed = {c.check_name for c in ingest.get_asset_check_evaluations() if c.passed}
    assert blocking <= passed
    assert requested == {DAY}


def test_scores_are_not_requested_when_a_blocking_check_of_the_bars_fails(
    mongo_resource: MongoResource, small_universe: Path, tmp_path: Path
) -> None:
    bars = SyntheticSource(seed=11).bars("BTCUSD", DAY, DAY)
    bars["high"] = bars[["open", "close"]].min(axis=1) * 0.99  # high below the close
    out = bars.reset_index()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    out.to_csv(tmp_path / "BTCUSD.csv", index=False)
    source = MarketDataSource(kind="files", path=str(tmp_path))
    ingest, requested, eager = _ingest_and_evaluate(
        _resources(mongo_resource, small_universe, source)
    )
    checks = {c.check_name: c.passed for c in ingest.get_asset_check_evaluations()}
    assert checks["bars_have_valid_ohlc"] is False
    # The partition did update, and eager alone requests the scores: the gate stops them.
    assert [e.partition for e in ingest.get_asset_materialization_events()] == [DAY]
    assert eager == {DAY}
    assert requested == set()
