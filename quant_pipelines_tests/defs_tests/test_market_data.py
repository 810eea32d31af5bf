from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from quant_pipelines.defs.market_data.assets import build_market_bars_asset, market_bars_key
from quant_pipelines.defs.partitions import trading_day_partitions
from quant_pipelines.defs.resources import MarketDataSource, MongoResource, UniverseResource
from quant_pipelines.marketdata import SyntheticSource, sessions
from quant_pipelines.marketdata.validate import (
    INCONSISTENT_OHLC,
    NON_FINITE_VALUE,
    NON_POSITIVE_PRICE,
)
from quant_pipelines.storage.embedded import free_port

EQUITY = build_market_bars_asset("equity")
CRYPTO = build_market_bars_asset("crypto")
RANGE = ("2024-01-02", "2024-01-31")


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@dg.asset(
    key=["downstream_of_equity_bars"],
    deps=[market_bars_key("equity")],
    partitions_def=trading_day_partitions("equity"),
)
def downstream_of_equity_bars() -> None:
    """A stand-in for the sentinel, to see whether blocking checks stop it."""


def test_materializes_a_range_into_mongodb_with_passing_checks(
    mongo_resource: MongoResource,
    synthetic_source: MarketDataSource,
    mongo_db,
    universe: UniverseResource,
) -> None:
    result = dg.materialize(
        [EQUITY],
        resources={"mongo": mongo_resource, "market_data": synthetic_source, "universe": universe},
        tags=_range_tags(*RANGE),
    )
    assert result.success
    n_sessions = len(sessions("equity", *RANGE))
    assert n_sessions == 21  # 22 weekdays; 2024-01-15 is Martin Luther King Jr. Day
    assert mongo_db.bars.count_documents({}) == 2 * n_sessions
    stored = mongo_db.bars.find_one({"symbol": "AAPL"}, sort=[("ts", 1)])
    assert stored["ts"].isoformat() == "2024-01-02T14:30:00+00:00"
    source = SyntheticSource(seed=11, universe=synthetic_source.universe)
    expected = source.bars("AAPL", "2024-01-02", "2024-01-02")
    assert stored["close"] == pytest.approx(float(expected["close"].iloc[0]))

    checks = _checks(result)
    assert set(checks) == {
        "bars_have_valid_ohlc",
        "bars_have_no_duplicates",
        "bars_cover_the_session",
        "bars_are_fresh",
    }
    for name in ("bars_have_valid_ohlc", "bars_have_no_duplicates", "bars_cover_the_session"):
        assert checks[name].passed, name
    # A January 2024 backfill is old: freshness warns, and says by how much.
    fresh = checks["bars_are_fresh"]
    assert not fresh.passed and fresh.severity == dg.AssetCheckSeverity.WARN
    assert fresh.metadata["max_lag_sessions"].value > 100
    assert fresh.metadata["threshold_lag_sessions"].value == 1

    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster/row_count"].value == 2 * n_sessions
    assert meta["first_ts"].value.startswith("2024-01-02")
    assert len(meta["preview"].value.records) == 10
    batch = mongo_db.ingest_batches.find_one(
        {"batch_id": "market_bars/equity:2024-01-02..2024-01-31"}
    )
    assert batch["rows"]["stored"] == 2 * n_sessions
    assert batch["symbols"] == ["AAPL", "SPY"]
    assert batch["runs"] == [result.run_id]


def test_same_partition_twice_leaves_the_same_documents(
    mongo_resource: MongoResource,
    synthetic_source: MarketDataSource,
    mongo_db,
    universe: UniverseResource,
) -> None:
    resources = {"mongo": mongo_resource, "market_data": synthetic_source, "universe": universe}
    first = dg.materialize([CRYPTO], resources=resources, partition_key="2024-03-09")
    count = mongo_db.bars.count_documents({})
    second = dg.materialize([CRYPTO], resources=resources, partition_key="2024-03-09")
    assert first.success and second.success
    assert count == 1  # BTCUSD on a Saturday
    assert mongo_db.bars.count_documents({}) == count
    assert mongo_db.ingest_batches.count_documents({}) == 1
    assert len(mongo_db.ingest_batches.find_one()["runs"]) == 2


def _write_csv(folder: Path, symbol: str, frame: pd.DataFrame) -> None:
    out = frame.reset_index()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    out.rename(
        columns={
            "ts": "Date",
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
        }
    ).to_csv(folder / f"{symbol}.csv", index=False)


def _files_source(tmp_path: Path, small_universe: Path) -> tuple[Path, MarketDataSource]:
    folder = tmp_path / "bars"
    folder.mkdir()
    synthetic = SyntheticSource(seed=3)
    for symbol in ("AAPL", "SPY", "BTCUSD"):
        _write_csv(folder, symbol, synthetic.bars(symbol, "2024-01-02", "2024-01-12"))
    return folder, MarketDataSource(
        kind="files", path=str(folder), universe_path=str(small_universe)
    )


def test_malformed_csv_names_file_row_and_column_and_writes_nothing(
    tmp_path: Path,
    small_universe: Path,
    mongo_resource: MongoResource,
    mongo_db,
    universe: UniverseResource,
) -> None:
    folder, source = _files_source(tmp_path, small_universe)
    lines = (folder / "SPY.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[4] = "abc"  # Close of data row 3 (file line 4)
    lines[3] = ",".join(fields)
    (folder / "SPY.csv").write_text("\n".join(lines) + "\n")

    result = dg.materialize(
        [EQUITY],
        resources={"mongo": mongo_resource, "market_data": source, "universe": universe},
        tags=_range_tags("2024-01-02", "2024-01-12"),
        raise_on_error=False,
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "SPY.csv" in message
    assert "line 4" in message or "row 4" in message, message
    assert "close" in message.lower()
    restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert restarts == [], "bad input is not transient: it must not be retried"
    assert mongo_db.bars.count_documents({}) == 0, "AAPL must not be written when SPY is malformed"
    assert mongo_db.ingest_batches.count_documents({}) == 0


def test_bad_bars_fail_the_blocking_check_and_stop_downstream(
    tmp_path: Path,
    small_universe: Path,
    mongo_resource: MongoResource,
    mongo_db,
    universe: UniverseResource,
) -> None:
    folder, source = _files_source(tmp_path, small_universe)
    frame = pd.read_csv(folder / "AAPL.csv")
    frame.loc[1, "Close"] = np.nan  # 2024-01-03
    frame.loc[2, "Low"] = -1.0  # 2024-01-04
    frame.loc[3, "High"] = frame.loc[3, "Low"] * 0.5  # 2024-01-05: high below open/close
    frame.to_csv(folder / "AAPL.csv", index=False)

    result = dg.materialize(
        [EQUITY, downstream_of_equity_bars],
        resources={"mongo": mongo_resource, "market_data": source, "universe": universe},
        tags=_range_tags("2024-01-02", "2024-01-12"),
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "blocking asset check failed" in error.message
    gate = _checks(result)["bars_have_valid_ohlc"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert gate.metadata["invalid_rows"].value == 3
    assert gate.metadata["threshold_invalid_rows"].value == 0
    rows = gate.metadata["offending_rows"].value.records
    assert {r.data["rule"] for r in rows} >= {
        NON_FINITE_VALUE,
        NON_POSITIVE_PRICE,
        INCONSISTENT_OHLC,
    }
    assert {r.data["symbol"] for r in rows} == {"AAPL"}
    assert {r.data["ts"][:10] for r in rows} == {"2024-01-03", "2024-01-04", "2024-01-05"}
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("downstream_of_equity_bars") not in materialized
    # Nothing is lost: the bad rows are stored, flagged, and never read as data.
    assert mongo_db.bars.count_documents({"valid": False}) == 3
    # Each failing (symbol, ts, rule) is a critical anomaly with its alert, once.
    anomalies = list(mongo_db.anomalies.find({"symbol": "AAPL"}))
    assert {a["rule"] for a in anomalies} >= {NON_FINITE_VALUE, NON_POSITIVE_PRICE}
    assert all(a["severity"] == "critical" for a in anomalies)
    alerts = mongo_db.alert_outbox.count_documents({})
    assert alerts == 2 * len(anomalies)  # webhook and slack
    dg.materialize(
        [EQUITY],
        resources={"mongo": mongo_resource, "market_data": source, "universe": universe},
        tags=_range_tags("2024-01-02", "2024-01-12"),
        raise_on_error=False,
    )
    assert mongo_db.anomalies.count_documents({}) == len(anomalies)
    assert mongo_db.alert_outbox.count_documents({}) == alerts
    assert mongo_db.bars.count_documents({"symbol": "SPY"}) == 9


def test_duplicate_rows_fail_the_duplicate_gate(
    tmp_path: Path,
    small_universe: Path,
    mongo_resource: MongoResource,
    mongo_db,
    universe: UniverseResource,
) -> None:
    folder, source = _files_source(tmp_path, small_universe)
    frame = pd.read_csv(folder / "SPY.csv")
    pd.concat([frame, frame.iloc[[2]]]).to_csv(folder / "SPY.csv", index=False)
    result = dg.materialize(
        [EQUITY],
        resources={"mongo": mongo_resource, "market_data": source, "universe": universe},
        tags=_range_tags("2024-01-02", "2024-01-12"),
        raise_on_error=False,
    )
    gate = _checks(result)["bars_have_no_duplicates"]
    assert not result.success and not gate.passed
    assert gate.metadata["duplicate_rows_in_source"].value == 1
    assert gate.metadata["duplicate_keys_in_mongodb"].value == 0
    assert mongo_db.bars.count_documents({"symbol": "SPY"}) == 9


@pytest.mark.slow
def test_unreachable_mongodb_fails_fast_names_host_and_is_retried(
    synthetic_source: MarketDataSource, universe: UniverseResource
) -> None:
    port = free_port()
    resource = MongoResource(
        uri=f"mongodb://ops:hunter2@127.0.0.1:{port}/?directConnection=true",
        server_selection_timeout_ms=300,
        timeout_ms=60_000,  # the ping is bounded by the selection timeout
    )
    result = dg.materialize(
        [CRYPTO],
        resources={"mongo": resource, "market_data": synthetic_source, "universe": universe},
        partition_key="2024-03-09",
        raise_on_error=False,
    )
    assert not result.success
    restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert len(restarts) == 2, "RetryPolicy(max_retries=2) must retry the step twice"
    message = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2" not in message
    for event in result.all_events:
        assert "hunter2" not in (event.message or "")


def test_the_universe_resource_is_the_one_source_of_symbols(
    tmp_path: Path, mongo_resource: MongoResource, mongo_db
) -> None:
    """The source's own universe lists AAPL, MSFT, SPY, NVDA; the resource lists only NVDA."""
    custom = tmp_path / "only_nvda.yaml"
    custom.write_text("symbols:\n  - {name: NVDA, asset_class: equity}\n")
    result = dg.materialize(
        [EQUITY],
        resources={
            "mongo": mongo_resource,
            "market_data": MarketDataSource(kind="synthetic", seed=5),
            "universe": UniverseResource(path=str(custom)),
        },
        partition_key="2024-03-05",
    )
    assert result.success
    assert mongo_db.bars.distinct("symbol") == ["NVDA"]
    assert mongo_db.ingest_batches.find_one()["symbols"] == ["NVDA"]


def test_universe_symbols_sensor_keeps_partitions_equal_to_the_universe(
    tmp_path: Path,
) -> None:
    from quant_pipelines.defs.automation import universe_symbols_sensor
    from quant_pipelines.defs.partitions import SYMBOL_PARTITIONS

    path = tmp_path / "universe.yaml"
    path.write_text(
        "symbols:\n  - {name: SPY, asset_class: equity}\n  - {name: BTCUSD, asset_class: crypto}\n"
    )
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"universe": UniverseResource(path=str(path))}
        )
        result = universe_symbols_sensor(context)
        for request in result.dynamic_partitions_requests:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        assert sorted(instance.get_dynamic_partitions(SYMBOL_PARTITIONS)) == ["BTCUSD", "SPY"]

        # The universe drops SPY and gains ETHUSD: the partitions follow, nothing else changes.
        path.write_text(
            "symbols:\n  - {name: BTCUSD, asset_class: crypto}\n"
            "  - {name: ETHUSD, asset_class: crypto}\n"
        )
        context = dg.build_sensor_context(
            instance=instance, resources={"universe": UniverseResource(path=str(path))}
        )
        requests = universe_symbols_sensor(context).dynamic_partitions_requests
        added = [
            r.partition_keys for r in requests if isinstance(r, dg.AddDynamicPartitionsRequest)
        ]
        deleted = [
            r.partition_keys for r in requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)
        ]
        assert added == [["ETHUSD"]] and deleted == [["SPY"]]
