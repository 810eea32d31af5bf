from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymongo import monitoring
from pymongo.database import Database

from quant_pipelines.storage import BarsRepository, make_client


def make_bars(n: int = 50, *, start: str = "2024-01-02 14:30", seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * 1.003
    low = np.minimum(open_, close) * 0.997
    idx = pd.date_range(start, periods=n, freq="D", tz="UTC", name="ts")
    vol = rng.uniform(1e5, 2e5, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=idx
    )


def test_upsert_then_read_round_trips_tz_aware(mongo_db: Database) -> None:
    repo = BarsRepository(mongo_db, batch_size=16)
    bars = make_bars()
    report = repo.upsert(bars, symbol="AAPL", source="synthetic", batch_id="b1")
    assert (report.inserted, report.updated, report.rows) == (50, 0, 50)
    back = repo.read("AAPL")
    assert str(back.index.tz) == "UTC" and back.index.name == "ts"
    pd.testing.assert_frame_equal(back, bars, check_freq=False)
    window = repo.read("AAPL", bars.index[10], bars.index[20])
    assert len(window) == 10 and window.index[0] == bars.index[10]


def test_second_upsert_is_idempotent_and_updates_values(mongo_db: Database) -> None:
    repo = BarsRepository(mongo_db, batch_size=7)
    bars = make_bars()
    repo.upsert(bars, symbol="AAPL", source="synthetic", batch_id="b1")
    changed = bars.copy()
    changed["close"] *= 1.01
    report = repo.upsert(changed, symbol="AAPL", source="synthetic", batch_id="b2")
    assert report.inserted == 0 and report.updated == 50
    assert repo.count("AAPL") == 50
    assert repo.read("AAPL")["close"].iloc[3] == pytest.approx(changed["close"].iloc[3])


def test_upsert_keeps_quality_fields_written_by_the_sentinel(mongo_db: Database) -> None:
    repo = BarsRepository(mongo_db)
    bars = make_bars(5)
    repo.upsert(bars, symbol="BTCUSD", source="synthetic", batch_id="b1")
    mongo_db.bars.update_many({}, {"$set": {"quality": {"severity": "info", "iforest": 0.1}}})
    repo.upsert(bars, symbol="BTCUSD", source="synthetic", batch_id="b1")
    assert mongo_db.bars.count_documents({"quality.severity": "info"}) == 5
    frame = repo.read("BTCUSD", with_quality=True)
    assert frame["quality_iforest"].tolist() == [0.1] * 5


def test_invalid_rows_are_kept_but_not_read(mongo_db: Database) -> None:
    repo = BarsRepository(mongo_db)
    bars = make_bars(5)
    bars.iloc[2, bars.columns.get_loc("close")] = np.nan
    bad = bars.index[2]
    repo.upsert(
        bars,
        symbol="SPY",
        source="synthetic",
        batch_id="b1",
        invalid_ts=[bad],
        issues_by_ts={bad: ["non_finite_value"]},
    )
    assert repo.count("SPY") == 5
    assert len(repo.read("SPY")) == 4
    stored = mongo_db.bars.find_one({"symbol": "SPY", "valid": False})
    assert stored["close"] is None and stored["issues"] == ["non_finite_value"]


class _FailedCommands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event) -> None:
        pass

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        self.names.append(event.command_name)


def test_dropped_connection_mid_write_is_retried_once(
    mongo_db: Database, mongo_client, mongo_uri: str
) -> None:
    listener = _FailedCommands()
    client = make_client(mongo_uri, event_listeners=[listener])
    repo = BarsRepository(client[mongo_db.name])
    bars = make_bars(30)
    mongo_client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": ["insert"], "closeConnection": True},
        }
    )
    try:
        repo.upsert(bars, symbol="EURUSD", source="synthetic", batch_id="b1")
    finally:
        mongo_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        client.close()
    assert listener.names == ["insert"], "the fail point must have cut one insert"
    assert BarsRepository(mongo_db).count("EURUSD") == 30
    dupes = list(
        mongo_db.bars.aggregate(
            [
                {"$group": {"_id": {"s": "$symbol", "t": "$ts"}, "n": {"$sum": 1}}},
                {"$match": {"n": {"$gt": 1}}},
            ]
        )
    )
    assert dupes == []


def test_naive_index_is_rejected(mongo_db: Database) -> None:
    bars = make_bars(3)
    bars.index = bars.index.tz_localize(None)
    with pytest.raises(ValueError, match="tz-aware"):
        BarsRepository(mongo_db).upsert(bars, symbol="X", source="s", batch_id="b")
    assert mongo_db.bars.count_documents({}) == 0


def test_a_corrected_row_becomes_valid_and_loses_its_issues(mongo_db: Database) -> None:
    repo = BarsRepository(mongo_db)
    bars = make_bars(3)
    bad = bars.index[1]
    repo.upsert(
        bars,
        symbol="X",
        source="s",
        batch_id="b",
        invalid_ts=[bad],
        issues_by_ts={bad: ["non_finite_value"]},
    )
    repo.upsert(bars, symbol="X", source="s", batch_id="b2")
    doc = mongo_db.bars.find_one({"symbol": "X", "ts": bad.to_pydatetime()})
    assert doc["valid"] is True and "issues" not in doc
    assert len(repo.read("X")) == 3
