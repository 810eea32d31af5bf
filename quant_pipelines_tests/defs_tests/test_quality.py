from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.defs.quality import anomaly_dashboard, build_scores_asset, prophet_models
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository

pytestmark = pytest.mark.slow

SCORES = build_scores_asset("crypto")
BATCH = ("2024-05-01", "2024-06-30")


@pytest.fixture
def spiked_btc(mongo_db: Database) -> pd.DataFrame:
    bars, labels = SyntheticSource(seed=21).bars_with_anomalies(
        "BTCUSD", "2023-01-01", BATCH[1], rate=0.01, kinds=["price_spike"], seed=4
    )
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")
    inside = labels[(labels["ts"] >= pd.Timestamp(BATCH[0], tz="UTC"))]
    return inside


def _tags() -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": BATCH[0],
        "dagster/asset_partition_range_end": BATCH[1],
    }


def test_scores_land_beside_the_bars_and_rerun_adds_no_duplicates(
    mongo_resource: MongoResource, mongo_db: Database, spiked_btc: pd.DataFrame
) -> None:
    assert len(spiked_btc) >= 1, "the fixture must inject a spike inside the batch"
    # A newly listed symbol with a few days of bars cannot be modelled yet: it is reported.
    fresh = SyntheticSource(seed=2).bars("ETHUSD", "2024-06-20", BATCH[1])
    BarsRepository(mongo_db).upsert(fresh, symbol="ETHUSD", source="test", batch_id="t")
    result = dg.materialize([SCORES], resources={"mongo": mongo_resource}, tags=_tags())
    assert result.success
    meta0 = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta0["symbols_without_history"].value == {"ETHUSD": len(fresh)}
    scored = mongo_db.bars.count_documents(
        {"symbol": "BTCUSD", "quality.scored_at": {"$exists": True}}
    )
    assert scored == 61  # May + June, every day
    doc = mongo_db.bars.find_one(
        {"symbol": "BTCUSD", "ts": spiked_btc["ts"].iloc[0].to_pydatetime()}
    )
    assert doc["quality"]["severity"] in {"warning", "critical"}
    assert 0.0 <= doc["quality"]["iforest"] <= 1.0
    flagged_ts = {a["ts"] for a in mongo_db.anomalies.find({"symbol": "BTCUSD"})}
    assert spiked_btc["ts"].iloc[0].to_pydatetime() in flagged_ts
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"anomaly_rate_within_threshold", "no_critical_anomalies"}
    rate = checks["anomaly_rate_within_threshold"]
    assert rate.metadata["threshold_rate"].value == 0.05
    critical = mongo_db.anomalies.count_documents({"severity": "critical"})
    assert checks["no_critical_anomalies"].passed == (critical == 0)
    assert mongo_db.alert_outbox.count_documents({}) == critical * 2  # webhook + slack copies

    anomalies, alerts = (
        mongo_db.anomalies.count_documents({}),
        mongo_db.alert_outbox.count_documents({}),
    )
    again = dg.materialize([SCORES], resources={"mongo": mongo_resource}, tags=_tags())
    assert again.success
    assert mongo_db.anomalies.count_documents({}) == anomalies
    assert mongo_db.alert_outbox.count_documents({}) == alerts

    board = dg.materialize([anomaly_dashboard], resources={"mongo": mongo_resource})
    meta = board.get_asset_materialization_events()[0].materialization.metadata
    assert meta["open"].value == anomalies
    assert meta["anomalies_per_batch"].value > 0
    assert mongo_db.kpis.count_documents({"kpi": "quality.false_positive_rate"}) == 1


def test_prophet_models_are_stored_as_json_and_used_for_scoring(
    mongo_resource: MongoResource, mongo_db: Database, spiked_btc: pd.DataFrame
) -> None:
    result = dg.materialize(
        [prophet_models],
        resources={"mongo": mongo_resource},
        run_config={"ops": {"prophet_models": {"config": {"history_days": 3000}}}},
    )
    assert result.success
    doc = mongo_db.quality_models.find_one({"symbol": "BTCUSD"})
    assert doc is not None and doc["model_json"].startswith("{")
    scored = dg.materialize([SCORES], resources={"mongo": mongo_resource}, tags=_tags())
    assert scored.success
    assert mongo_db.bars.count_documents({"symbol": "BTCUSD", "quality.prophet": {"$gt": 0}}) >= 1
