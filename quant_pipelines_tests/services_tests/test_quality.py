"""The sentinel's use cases against the real MongoDB-wire server: scoring and the dashboard."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.marketdata import SyntheticSource, Universe, load_universe
from quant_pipelines.services.calibration import refit_quality_models
from quant_pipelines.services.quality import (
    MAX_ANOMALY_RATE,
    anomaly_dashboard,
    score_partition,
    scores_batch_id,
)
from quant_pipelines.storage import quality as qstore
from quant_pipelines.storage.anomaly_workflow import transition
from quant_pipelines.storage.repositories import Repositories

START, END = pd.Timestamp("2024-05-01", tz="UTC"), pd.Timestamp("2024-07-01", tz="UTC")
JUMP_DAY = pd.Timestamp("2024-06-10", tz="UTC")
NOW = dt.datetime(2024, 7, 1, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def universe(tmp_path: Path) -> Universe:
    path = tmp_path / "universe.yaml"
    path.write_text(
        "symbols:\n"
        "  - {name: BTCUSD, asset_class: crypto}\n"
        "  - {name: ETHUSD, asset_class: crypto}\n"
        "  - {name: SPY, asset_class: equity}\n"
    )
    return load_universe(path)


@pytest.fixture
def repos(mongo_db: Database) -> Repositories:
    return Repositories.over(mongo_db)


@pytest.fixture
def jumped_btc(repos: Repositories) -> pd.Timestamp:
    """BTCUSD since 2023 with one bar quadrupled on JUMP_DAY (a critical price jump)."""
    bars = SyntheticSource(seed=21).bars("BTCUSD", "2023-01-01", "2024-06-30")
    jump = bars.index[bars.index >= JUMP_DAY][0]
    bars.loc[jump, ["open", "high", "low", "close"]] *= 4.0
    repos.bars.upsert(bars, symbol="BTCUSD", source="test", batch_id="t")
    return jump


def test_batch_ids_name_the_bars_partitions() -> None:
    assert scores_batch_id("crypto", "2024-05-01", "2024-05-01") == "market_bars/crypto:2024-05-01"
    assert (
        scores_batch_id("fx", "2024-05-01", "2024-05-03") == "market_bars/fx:2024-05-01..2024-05-03"
    )


@pytest.mark.slow
def test_score_partition_records_scores_anomalies_alerts_and_batch_counts(
    repos: Repositories, mongo_db: Database, universe: Universe, jumped_btc: pd.Timestamp
) -> None:
    fresh = SyntheticSource(seed=2).bars("ETHUSD", "2024-06-25", "2024-06-30")
    repos.bars.upsert(fresh, symbol="ETHUSD", source="test", batch_id="t")
    batch_id = scores_batch_id("crypto", "2024-05-01", "2024-06-30")

    report = score_partition(
        repos, universe, "crypto", start=START, end=END, batch_id=batch_id, now=NOW
    )

    assert report.batch_id == batch_id and report.total == 61  # BTCUSD, May + June
    assert report.unscored == {"ETHUSD": len(fresh)}  # too little history to model
    assert report.thresholds_version == "default" and report.max_rate == MAX_ANOMALY_RATE
    [jump] = [a for a in report.anomalies if pd.Timestamp(a["ts"]) == jumped_btc]
    assert jump["severity"] == "critical" and "price_jump" in jump["rules"]
    assert report.counts["critical"] == len(report.critical) >= 1
    assert report.flagged == len(report.anomalies)
    assert report.rate == pytest.approx(report.flagged / 61)
    assert report.alerts_enqueued == 2 * len(report.critical)  # webhook + slack
    stored = mongo_db.bars.find_one({"symbol": "BTCUSD", "ts": jumped_btc.to_pydatetime()})
    assert stored["quality"]["severity"] == "critical"
    assert stored["quality"]["scored_at"].replace(tzinfo=dt.UTC) == NOW
    batch = repos.batches.get(batch_id)
    assert batch["anomalies_by_severity"] == report.counts

    again = score_partition(
        repos, universe, "crypto", start=START, end=END, batch_id=batch_id, now=NOW
    )
    assert again.counts == report.counts and again.alerts_enqueued == 0
    assert mongo_db.anomalies.count_documents({}) == len(report.anomalies)


def test_anomaly_dashboard_counts_rates_and_upserts_the_kpis(
    repos: Repositories, mongo_db: Database
) -> None:
    rows = [
        {"symbol": s, "ts": pd.Timestamp(f"2024-06-0{i + 1}", tz="UTC"), "detector": "rules",
         "severity": sev}
        for i, (s, sev) in enumerate(
            [("AAPL", "critical"), ("AAPL", "warning"), ("SPY", "warning"), ("SPY", "critical")]
        )
    ]  # fmt: skip
    ids = [d["_id"] for d in sorted(qstore.upsert_anomalies(mongo_db, rows), key=lambda d: d["ts"])]
    transition(mongo_db, ids[0], "resolve", actor="analyst")
    transition(mongo_db, ids[1], "false_positive", actor="analyst")
    transition(mongo_db, ids[2], "ack", actor="analyst")
    qstore.record_batch_scores(
        mongo_db, "b1", {"info": 9, "warning": 2, "critical": 1}, scored_at=NOW
    )
    qstore.record_batch_scores(
        mongo_db, "b2", {"info": 5, "warning": 1, "critical": 0}, scored_at=NOW
    )

    report = anomaly_dashboard(repos, now=NOW)

    assert report.by_severity == {"critical": 2, "warning": 2}
    assert report.by_status == {"resolved": 1, "false_positive": 1, "acknowledged": 1, "open": 1}
    assert report.by_symbol == {"AAPL": 2, "SPY": 2}
    assert report.anomalies_per_batch == pytest.approx((3 + 1) / 2)
    assert report.false_positive_rate == pytest.approx(0.5)  # 1 of 2 reviewed
    assert report.time_to_resolution_mean_s is not None and report.time_to_resolution_mean_s >= 0
    assert [a["symbol"] for a in report.latest] == ["SPY", "SPY", "AAPL", "AAPL"]  # newest first
    assert report.period == "2024-07-01"
    kpis = {d["kpi"]: d for d in mongo_db.kpis.find({"period": "2024-07-01"})}
    assert kpis["quality.open_anomalies"]["value"] == 1.0
    assert kpis["quality.critical_anomalies"]["value"] == 2.0
    assert kpis["quality.anomalies_per_batch"]["value"] == pytest.approx(2.0)

    anomaly_dashboard(repos, now=NOW)  # same day again: the KPIs are updated, not duplicated
    assert mongo_db.kpis.count_documents({"period": "2024-07-01"}) == len(kpis)


def test_refit_skips_symbols_without_history_and_versions_by_iso_week(
    repos: Repositories, universe: Universe
) -> None:
    report = refit_quality_models(repos, universe, history_days=30, now=pd.Timestamp(NOW))
    assert report.version == "2024-W27"
    assert report.fitted == [] and set(report.skipped) == {"BTCUSD", "ETHUSD", "SPY"}
