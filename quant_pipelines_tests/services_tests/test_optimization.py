"""The study use case without Dagster: bars from MongoDB in, a report out, no request state."""

from __future__ import annotations

import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import Validation
from quant_pipelines.services.optimization import (
    NoBarsError,
    StudySpec,
    run_requested_study,
    run_study_worker,
    study_period,
)
from quant_pipelines.storage import BarsRepository
from quant_pipelines.storage.repositories import Repositories


def _spec(**overrides) -> StudySpec:
    fields = {
        "strategy": "sma_crossover",
        "asset_class": "crypto",
        "symbols": ["BTCUSD", "ETHUSD"],
        "start": "2022-01-01",
        "end": "2023-06-30",
        "study_name": "svc",
        "n_trials": 4,
        "validation": Validation(method="none"),
        "sampler": "random",
        "seed": 2,
    }
    return StudySpec(**(fields | overrides))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2021-01-01", "2021-06-30", ("2021-01-01", "2021-06-30")),
        ("", "2021-06-30", ("2021-01-01", "2021-06-30")),  # 180 days back from the end
        ("", "", ("2024-09-10", "2025-03-09")),  # up to today
    ],
)
def test_study_period(start: str, end: str, expected: tuple[str, str]) -> None:
    now = pd.Timestamp("2025-03-09 23:00", tz="UTC")
    assert study_period(start, end, lookback_days=180, now=now) == expected


def test_no_bars_raise_and_write_nothing(mongo_db: Database) -> None:
    with pytest.raises(NoBarsError, match="market_bars/crypto"):
        run_requested_study(Repositories.over(mongo_db), _spec())
    assert mongo_db.studies.count_documents({}) == 0
    assert mongo_db.optimization_requests.count_documents({}) == 0


def test_a_study_reports_the_symbols_with_bars_and_mirrors_its_progress(mongo_db: Database) -> None:
    bars = SyntheticSource(seed=5).bars("BTCUSD", "2022-01-01", "2023-06-30")
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")
    report = run_requested_study(
        Repositories.over(mongo_db), _spec(metadata={"run_id": "r-1", "request_id": "q-1"})
    )
    assert report.symbols == ["BTCUSD"]  # ETHUSD had no bars
    assert report.summary.n_trials == 4 and report.summary.status == "completed"
    assert not report.resumable
    study = mongo_db.studies.find_one({"study_name": "svc"})
    assert (study["run_id"], study["request_id"]) == ("r-1", "q-1")
    assert study["progress"]["done"] == study["progress"]["total"] == 4
    assert study["progress"]["eta_s"] == 0
    assert study["progress"]["best_value"] == report.summary.best_value
    assert mongo_db.optimization_requests.count_documents({}) == 0  # requests are Dagster's


def _worker(mongo_db: Database, **overrides):
    fields = {
        "worker": 1,
        "study_name": "w",
        "strategy": "sma_crossover",
        "symbols": ["BTCUSD"],
        "start": "2022-01-01",
        "end": "2023-07-01",  # exclusive: the last bar read is 2023-06-30
        "n_trials": 3,
        "sampler": "random",
        "asset_class": "crypto",
    }
    return run_study_worker(Repositories.over(mongo_db), **(fields | overrides))


def test_a_worker_refuses_missing_bars_and_a_negative_bar_count(mongo_db: Database) -> None:
    with pytest.raises(NoBarsError, match=r"\['BTCUSD'\] between 2022-01-01 and 2023-07-01"):
        _worker(mongo_db)
    with pytest.raises(ValueError, match="max_bars must be >= 0"):
        _worker(mongo_db, max_bars=-1)
    assert mongo_db.studies.count_documents({}) == 0


def test_a_worker_studies_the_last_max_bars_with_its_validation(mongo_db: Database) -> None:
    bars = SyntheticSource(seed=5).bars("BTCUSD", "2022-01-01", "2023-06-30")
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")
    cpcv = Validation(method="cpcv", n_groups=4, n_test_groups=2)
    report = _worker(mongo_db, max_bars=300, validation=cpcv, pruner="none", objective="sortino")
    assert report.worker == 1 and report.trials_run == report.n_trials == 3
    assert report.finished >= report.started and report.cpu_seconds > 0
    study = mongo_db.studies.find_one({"study_name": "w"})
    assert (study["validation"]["method"], study["objective"], study["pruner"]) == (
        "cpcv",
        "sortino",
        "none",
    )
    start = pd.Timestamp(study["in_sample"][0]["start"])
    assert (start if start.tzinfo else start.tz_localize("UTC")) == bars.index[-300]
    trials = list(mongo_db.trials.find({"study_name": "w"}))
    assert all(len(t["scores"]["paths"]) == 3 for t in trials)  # 2 * C(4, 2) / 4 paths
