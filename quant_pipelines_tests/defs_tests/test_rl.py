from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import gridfs
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.defs.partitions import SYMBOL_PARTITIONS
from quant_pipelines.defs.resources import MongoResource, UniverseResource
from quant_pipelines.defs.rl.assets import rl_policy, rl_policy_replay
from quant_pipelines.defs.rl.jobs import weekly_rl_training_schedule
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository

pytestmark = pytest.mark.slow

CONFIG = {
    "algo": "ppo",
    "total_timesteps": 512,
    "seed": 1,
    "lookback_days": 500,
    "holdout_days": 90,
}


def _run_config() -> dict:
    return {"ops": {"rl_policy": {"config": CONFIG}, "rl_policy_replay": {"config": CONFIG}}}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A test instance whose symbol partitions hold BTCUSD (the sensor's job)."""
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SYMBOL_PARTITIONS, ["BTCUSD"])
        yield instance


@pytest.fixture
def resources(mongo_resource: MongoResource) -> dict:
    return {"mongo": mongo_resource, "universe": UniverseResource()}


@pytest.fixture
def btc_bars(mongo_db: Database) -> None:
    today = pd.Timestamp.now(tz="UTC").date()
    start = (pd.Timestamp(today) - pd.Timedelta(days=700)).date()
    bars = SyntheticSource(seed=9).bars("BTCUSD", start, today)
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")


def test_train_then_replay_records_policy_metrics_and_kpis(
    resources: dict, instance, mongo_db: Database, btc_bars, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("QP_POLICY_SIGNING_KEY", raising=False)
    result = dg.materialize(
        [rl_policy, rl_policy_replay],
        resources=resources,
        instance=instance,
        partition_key="BTCUSD",
        run_config=_run_config(),
    )
    assert result.success
    record = mongo_db.rl_policies.find_one({"symbol": "BTCUSD"})
    assert len(record["sha256"]) == 64 and record["algo"] == "ppo"
    assert record["format"] == "safetensors+json/1" and len(record["signature"]) == 64
    key_file = tmp_path / "secrets" / "policy_signing.key"  # the key is not in the database
    assert key_file.stat().st_mode & 0o077 == 0
    assert key_file.read_text().strip() not in str(list(mongo_db.rl_policies.find({})))
    assert gridfs.GridFS(mongo_db, collection="rl_policy_files").exists(record["file_id"])
    replay = record["replay"]
    assert replay["drawdown_compliant"] == (abs(replay["max_drawdown"]) <= replay["drawdown_limit"])
    assert replay["episode_length_mean"] > 0

    events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    meta = events["rl_policy_replay"].materialization.metadata
    assert meta["sharpe"].value == pytest.approx(replay["sharpe"])
    assert meta["holdout_signed"].value is True and replay["holdout_signed"] is True
    policy_meta = events["rl_policy"].materialization.metadata
    assert policy_meta["policy_id"].value == record["policy_id"]
    assert (
        policy_meta["holdout_start"].value
        == record["holdout_start"].replace(tzinfo=dt.UTC).timestamp()
    )
    assert "data:image/png;base64," in meta["equity_curve"].value
    assert len(meta["by_regime"].value.records) >= 1
    kpis = {d["kpi"] for d in mongo_db.kpis.find({})}
    assert {"rl.policy_sharpe.BTCUSD", "rl.drawdown_compliance.BTCUSD"} <= kpis

    # A second version: the replay reports the Sharpe change from the first one.
    dg.materialize(
        [rl_policy, rl_policy_replay],
        resources=resources,
        instance=instance,
        partition_key="BTCUSD",
        run_config=_run_config(),
    )
    assert mongo_db.rl_policies.count_documents({"symbol": "BTCUSD"}) == 2
    newest = mongo_db.rl_policies.find_one({"symbol": "BTCUSD"}, sort=[("created_at", -1)])
    assert newest["replay"]["sharpe_change_vs_previous"] is not None


def test_tampered_policy_weights_are_refused_by_the_replay(
    resources: dict, instance, mongo_db: Database, btc_bars, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert dg.materialize(
        [rl_policy],
        resources=resources,
        instance=instance,
        partition_key="BTCUSD",
        run_config={"ops": {"rl_policy": {"config": CONFIG}}},
    ).success
    record = mongo_db.rl_policies.find_one({"symbol": "BTCUSD"})
    chunk = mongo_db["rl_policy_files.chunks"].find_one({"files_id": record["file_id"], "n": 0})
    data = bytearray(chunk["data"])
    data[100] ^= 0xFF
    mongo_db["rl_policy_files.chunks"].update_one(
        {"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}}
    )
    result = dg.materialize(
        [rl_policy_replay],
        resources=resources,
        instance=instance,
        partition_key="BTCUSD",
        run_config={"ops": {"rl_policy_replay": {"config": CONFIG}}},
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    text = error.message + "".join(c.message for c in [error.cause] if c)
    assert "signature does not verify" in text
    assert "replay" not in mongo_db.rl_policies.find_one({"symbol": "BTCUSD"})


def test_weekly_schedule_requests_one_low_priority_run_per_symbol_partition(instance) -> None:
    instance.add_dynamic_partitions(SYMBOL_PARTITIONS, ["SPY"])
    when = dt.datetime(2026, 11, 28, 15, tzinfo=dt.UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    requests = weekly_rl_training_schedule(context)
    assert sorted(r.partition_key for r in requests) == ["BTCUSD", "SPY"]
    assert {r.run_key for r in requests} == {"rl:BTCUSD:2026-11-28", "rl:SPY:2026-11-28"}
    assert all(r.tags["dagster/priority"] == "-1" for r in requests)
