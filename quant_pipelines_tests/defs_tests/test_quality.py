from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.defs.quality.assets import (
    anomaly_dashboard,
    anomaly_thresholds,
    crypto_bar_anomaly_scores,
    prophet_models,
)
from quant_pipelines.defs.resources import MongoResource, UniverseResource
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.quality.severity import Thresholds
from quant_pipelines.services.calibration import recalibrate
from quant_pipelines.storage import BarsRepository
from quant_pipelines.storage import quality as qstore
from quant_pipelines.storage.anomaly_workflow import transition

pytestmark = pytest.mark.slow

SCORES = crypto_bar_anomaly_scores
BATCH = ("2024-05-01", "2024-06-30")
#: The bar the fixture quadruples: a one-bar jump no crypto session makes, so a critical bar.
JUMP_DAY = pd.Timestamp("2024-06-10", tz="UTC")


@pytest.fixture
def resources(mongo_resource: MongoResource) -> dict[str, object]:
    return {"mongo": mongo_resource, "universe": UniverseResource()}


@pytest.fixture
def spiked_btc(mongo_db: Database) -> pd.DataFrame:
    """BTCUSD bars with injected price spikes, and one price jump (critical) inside the batch."""
    bars, labels = SyntheticSource(seed=21).bars_with_anomalies(
        "BTCUSD", "2023-01-01", BATCH[1], rate=0.01, kinds=["price_spike"], seed=4
    )
    jump = bars.index[bars.index >= JUMP_DAY][0]
    bars.loc[jump, ["open", "high", "low", "close"]] *= 4.0
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")
    inside = labels[(labels["ts"] >= pd.Timestamp(BATCH[0], tz="UTC"))]
    return inside


def _tags() -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": BATCH[0],
        "dagster/asset_partition_range_end": BATCH[1],
    }


def test_scores_land_beside_the_bars_and_rerun_adds_no_duplicates(
    resources: dict[str, object], mongo_db: Database, spiked_btc: pd.DataFrame
) -> None:
    assert len(spiked_btc) >= 1, "the fixture must inject a spike inside the batch"
    # A newly listed symbol with a few days of bars cannot be modelled yet: it is reported.
    fresh = SyntheticSource(seed=2).bars("ETHUSD", "2024-06-20", BATCH[1])
    BarsRepository(mongo_db).upsert(fresh, symbol="ETHUSD", source="test", batch_id="t")
    result = dg.materialize([SCORES], resources=resources, tags=_tags())
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
    jump = mongo_db.anomalies.find_one({"symbol": "BTCUSD", "ts": JUMP_DAY.to_pydatetime()})
    assert jump is not None and jump["severity"] == "critical" and "price_jump" in jump["rules"]
    no_critical = checks["no_critical_anomalies"]
    assert not no_critical.passed and no_critical.severity == dg.AssetCheckSeverity.ERROR
    assert no_critical.metadata["critical_bars"].value == critical >= 1
    assert no_critical.metadata["threshold_critical"].value == 0
    assert meta0["critical"].value == critical and meta0["alerts_enqueued"].value == critical * 2
    assert mongo_db.alert_outbox.count_documents({}) == critical * 2  # webhook + slack copies

    anomalies, alerts = (
        mongo_db.anomalies.count_documents({}),
        mongo_db.alert_outbox.count_documents({}),
    )
    again = dg.materialize([SCORES], resources=resources, tags=_tags())
    assert again.success
    assert mongo_db.anomalies.count_documents({}) == anomalies
    assert mongo_db.alert_outbox.count_documents({}) == alerts

    board = dg.materialize([anomaly_dashboard], resources=resources)
    meta = board.get_asset_materialization_events()[0].materialization.metadata
    assert meta["open"].value == anomalies
    assert meta["anomalies_per_batch"].value > 0
    assert mongo_db.kpis.count_documents({"kpi": "quality.false_positive_rate"}) == 1


def test_prophet_models_are_stored_as_json_and_used_for_scoring(
    resources: dict[str, object], mongo_db: Database, spiked_btc: pd.DataFrame
) -> None:
    result = dg.materialize(
        [prophet_models],
        resources=resources,
        run_config={"ops": {"prophet_models": {"config": {"history_days": 3000}}}},
    )
    assert result.success
    doc = mongo_db.quality_models.find_one({"symbol": "BTCUSD"})
    assert doc is not None and doc["model_json"].startswith("{")
    scored = dg.materialize([SCORES], resources=resources, tags=_tags())
    assert scored.success
    assert mongo_db.bars.count_documents({"symbol": "BTCUSD", "quality.prophet": {"$gt": 0}}) >= 1


def test_weekly_thresholds_calibrate_both_detectors_with_the_analysts_verdicts(
    resources: dict[str, object], mongo_db: Database, spiked_btc: pd.DataFrame
) -> None:
    """``anomaly_thresholds`` replays the forest and Prophet out of sample, leaves confirmed
    anomalies out of the clean sample and false positives out of training."""
    bars = BarsRepository(mongo_db).read("BTCUSD")
    confirmed_ts, fp_ts = bars.index[-30], bars.index[-60]
    upserted = qstore.upsert_anomalies(
        mongo_db,
        [
            {"symbol": "BTCUSD", "ts": ts, "detector": "statistical", "severity": "warning"}
            for ts in (confirmed_ts, fp_ts)
        ],
    )
    by_ts = {pd.Timestamp(d["ts"]).tz_convert("UTC"): d["_id"] for d in upserted}
    transition(mongo_db, by_ts[confirmed_ts], "resolve", actor="analyst")
    transition(mongo_db, by_ts[fp_ts], "false_positive", actor="analyst")

    config = {"history_days": 3000, "calibration_bars": 120}
    result = dg.materialize(
        [anomaly_thresholds],
        resources=resources,
        run_config={"ops": {"anomaly_thresholds": {"config": config}}},
    )
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["confirmed_left_out"].value == {"BTCUSD": 1}
    assert meta["false_positives_excluded"].value == {"BTCUSD": 1}
    assert "ETHUSD" in meta["skipped"].value  # no bars: reported, not fatal
    stored = Thresholds.from_dict(qstore.latest_thresholds(mongo_db))
    assert stored.version == meta["version"].value

    # Prophet took part: its scores vary, and a forest-only replay calibrates differently.
    report = recalibrate(mongo_db, {"BTCUSD": (bars, "24/7")}, calibration_bars=120)
    assert report.thresholds.to_dict() | {"version": ""} == stored.to_dict() | {"version": ""}
    assert report.scores["prophet_price"].std() > 0 and report.scores["prophet_volume"].std() > 0
    assert confirmed_ts not in report.scores.index and fp_ts in report.scores.index
    forest_only = recalibrate(
        mongo_db, {"BTCUSD": (bars, "24/7")}, calibration_bars=120, with_prophet=False
    )
    assert forest_only.thresholds.prophet_volume_warning != stored.prophet_volume_warning
