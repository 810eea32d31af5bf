"""Study runs have a wall-clock limit; a stopped study resumes later (item 2b).

The runner over the project's real MongoDB journal (leases on, as in production). The Dagster
side (request re-queued, resumed by the sensor's next run) is tested in
``defs_tests/test_optimization.py``.
"""

from __future__ import annotations

import time

import optuna
import pytest
from pymongo.database import Database

from quant_pipelines.defs.optimization.assets import OptimizationConfig
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import run_study
from quant_pipelines.storage import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository

N_TRIALS = 150  # far more than a 1 s run can do here (~40 cheap trials per second)


def _run(db: Database, *, timeout: float | None):
    bars = SyntheticSource(0).bars("SPY", "2016-01-01", "2017-12-31")
    storage = optuna_storage(db)
    try:
        return run_study(
            bars,
            strategy="sma_crossover",
            study_name="limited",
            n_trials=N_TRIALS,
            timeout=timeout,
            validation="none",  # no validation steps, no pruning: done == complete
            storage=storage,
            recorder=StudiesRepository(db),
        )
    finally:
        storage.close()


def _states(db: Database) -> list[str]:
    storage = optuna_storage(db, heartbeat_interval=None)
    study = optuna.load_study(study_name="limited", storage=storage)
    return [t.state.name for t in study.get_trials(deepcopy=False)]


@pytest.mark.slow
def test_a_limited_run_stops_cleanly_and_the_next_one_completes_the_study(
    mongo_db: Database,
) -> None:
    started = time.monotonic()
    first = _run(mongo_db, timeout=1.0)
    assert time.monotonic() - started < 30  # bounded by the limit, plus set-up and one trial
    assert first.status == "incomplete" and first.stopped_at_limit
    assert 0 < first.n_trials < N_TRIALS
    states = _states(mongo_db)
    assert "RUNNING" not in states and states.count("COMPLETE") == first.n_trials
    study_doc = mongo_db.studies.find_one({"study_name": "limited"})
    assert study_doc["status"] == "incomplete"

    second = _run(mongo_db, timeout=None)
    assert second.status == "completed" and not second.stopped_at_limit
    assert second.trials_run == N_TRIALS - first.n_trials  # only the rest of the budget
    states = _states(mongo_db)
    assert states.count("COMPLETE") == N_TRIALS and len(states) == N_TRIALS
    assert mongo_db.studies.find_one({"study_name": "limited"})["status"] == "completed"


def test_a_run_that_finishes_within_its_limit_is_not_marked_stopped(mongo_db: Database) -> None:
    bars = SyntheticSource(0).bars("SPY", "2016-01-01", "2016-12-31")
    s = run_study(bars, strategy="sma_crossover", study_name="quick", n_trials=3, timeout=600)
    assert s.status == "completed" and not s.stopped_at_limit


@pytest.mark.parametrize(
    ("timeout_s", "max_wall_seconds", "expected"),
    [(0.0, 7200, 7200.0), (30.0, 7200, 30.0), (0.0, 0, None), (9000.0, 7200, 7200.0)],
)
def test_every_study_run_has_a_two_hour_limit_by_default(
    timeout_s: float, max_wall_seconds: int, expected: float | None
) -> None:
    assert OptimizationConfig().max_wall_seconds == 7200
    config = OptimizationConfig(timeout_s=timeout_s, max_wall_seconds=max_wall_seconds)
    assert config.wall_limit() == expected
