"""The daily partition, batched, against the real MongoDB-wire server: the stored band is used
and every symbol's scores equal a per-symbol ``score_bars``, bit for bit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines._utils.time import utc_timestamp
from quant_pipelines.marketdata import SyntheticSource, Universe, load_universe
from quant_pipelines.quality import (
    ProphetModels,
    SymbolModels,
    fit_models,
    mark_market_events,
    score_bars,
)
from quant_pipelines.services.calibration import refit_quality_models
from quant_pipelines.services.quality import (
    HISTORY_DAYS,
    SEED,
    partition_scores,
    score_partition,
    scores_batch_id,
)
from quant_pipelines.storage import quality as qstore
from quant_pipelines.storage.anomaly_workflow import transition
from quant_pipelines.storage.repositories import Repositories

pytestmark = pytest.mark.slow

SUNDAY = pd.Timestamp("2024-06-09 12:00", tz="UTC")  # the weekly refit
START, END = pd.Timestamp("2024-06-10", tz="UTC"), pd.Timestamp("2024-06-13", tz="UTC")


@pytest.fixture
def universe(tmp_path: Path) -> Universe:
    path = tmp_path / "universe.yaml"
    path.write_text(
        "symbols:\n"
        "  - {name: BTCUSD, asset_class: crypto}\n"
        "  - {name: ETHUSD, asset_class: crypto}\n"
        "  - {name: SOLUSD, asset_class: crypto}\n"
        "  - {name: SPY, asset_class: equity}\n"
    )
    return load_universe(path)


@pytest.fixture
def repos(mongo_db: Database, universe: Universe) -> Repositories:
    """A year of bars per symbol, the weekly refit on the Sunday, then the week's bars (a
    spike on the batch's second day), and one false positive marked by an analyst."""
    repos = Repositories.over(mongo_db)
    weeks = {}
    for i, symbol in enumerate(universe):
        bars = SyntheticSource(seed=30 + i, universe=universe).bars(
            symbol.name, "2023-06-01", "2024-06-14"
        )
        if symbol.name == "ETHUSD":
            bars.loc[START + pd.Timedelta("1D"), ["open", "high", "low", "close"]] *= 1.4
        repos.bars.upsert(bars[bars.index < SUNDAY], symbol=symbol.name, source="t", batch_id="t")
        weeks[symbol.name] = bars[bars.index >= SUNDAY]
    refit = refit_quality_models(repos, universe, history_days=400, now=SUNDAY, seed=SEED)
    assert set(refit.fitted) == {s.name for s in universe}
    for name, bars in weeks.items():  # the week arrives after the refit, as in production
        repos.bars.upsert(bars, symbol=name, source="t", batch_id="t")
    marked = pd.Timestamp("2024-05-20", tz="UTC")
    [doc] = qstore.upsert_anomalies(
        mongo_db,
        [{"symbol": "BTCUSD", "ts": marked, "detector": "statistical", "severity": "warning"}],
    )
    transition(mongo_db, doc["_id"], "false_positive", actor="analyst")
    return repos


def _per_symbol(repos: Repositories, universe: Universe) -> dict[str, pd.DataFrame]:
    """What the daily path computed one symbol at a time (today's loop, without the batch)."""
    week = START  # a Monday
    scores = {}
    for symbol in universe.by_asset_class("crypto"):
        frame = repos.bars.read(symbol.name, START - pd.Timedelta(days=HISTORY_DAYS), END)
        batch, history = frame[frame.index >= START], frame[frame.index < START]
        fitted = fit_models(
            history,
            seed=SEED,
            exclude=qstore.false_positive_times(repos.db, symbol.name),
            calendar=symbol.calendar,
            with_prophet=False,
            before=week,
        )
        doc = qstore.latest_prophet(repos.db, symbol.name)
        models = SymbolModels(fitted.iforest, ProphetModels.from_json(doc["model_json"]))
        inside = models.prophet.band.lookup(batch.index.as_unit("ns").asi8)[1]
        assert inside.all()  # the week is inside the stored band
        scores[symbol.name] = score_bars(
            batch,
            history=history,
            seed=SEED,
            models=models,
            calendar=symbol.calendar,
            thresholds=None,
        )
    return mark_market_events(scores, lambda s: universe.get(s).asset_class)


def test_batched_partition_equals_per_symbol_scoring(repos: Repositories, universe) -> None:
    doc = qstore.latest_prophet(repos.db, "BTCUSD")
    assert json.loads(doc["model_json"])["format"] == 3
    assert doc["band_until"].replace(tzinfo=dt.UTC) >= END  # the week is inside the band

    batched = partition_scores(repos, universe, "crypto", start=START, end=END)

    expected = _per_symbol(repos, universe)
    assert list(batched.scores) == list(expected) == ["BTCUSD", "ETHUSD", "SOLUSD"]
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(batched.scores[name], frame, check_exact=True)
    assert batched.unscored == {} and batched.thresholds is None
    spike = batched.scores["ETHUSD"].loc[START + pd.Timedelta("1D")]
    assert spike["severity"] in {"warning", "critical"}


def test_score_partition_writes_the_batched_scores(
    repos: Repositories, universe, mongo_db: Database
) -> None:
    now = dt.datetime(2024, 6, 13, 6, tzinfo=dt.UTC)
    batch_id = scores_batch_id("crypto", "2024-06-10", "2024-06-12")
    report = score_partition(
        repos, universe, "crypto", start=START, end=END, batch_id=batch_id, now=now
    )
    expected = _per_symbol(repos, universe)
    assert report.total == sum(len(f) for f in expected.values()) == 9
    for name, frame in expected.items():
        stored = {
            utc_timestamp(d["ts"]): d["quality"]
            for d in mongo_db.bars.find({"symbol": name, "quality": {"$exists": True}})
        }
        assert set(stored) == set(frame.index)
        for ts, row in frame.iterrows():
            assert stored[ts]["severity"] == row["severity"]
            assert stored[ts]["iforest"] == row["iforest"]
            assert stored[ts]["prophet"] == row["prophet"]
            assert stored[ts]["flags"] == sorted(set(row["flags"]))
