"""run_study on the MongoDB journal: mirrors, leaderboard, resume from a fresh process view."""

from __future__ import annotations

import optuna
from pymongo.database import Database

from quant_pipelines.optimizer import run_study
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository, get_study, leaderboard, list_trials


def test_study_on_mongodb_is_mirrored_and_ranked(bars, mongo_db: Database) -> None:
    repo = StudiesRepository(mongo_db)
    kw = {"storage": optuna_storage(mongo_db), "recorder": repo, "asset_class": "equity"}
    s = run_study(bars, strategy="sma_crossover", study_name="eq-sma", n_trials=12, **kw)
    run_study(
        bars, strategy="momentum", study_name="eq-mom", n_trials=6, engine="hyperopt",
        recorder=repo, asset_class="equity", min_trades=0,
    )  # fmt: skip
    doc = get_study(mongo_db, "eq-sma")
    assert doc["status"] == "completed" and doc["progress"]["trials_done"] == 12
    assert doc["best"]["params"] == s.best_params
    assert doc["improvement"] == s.improvement
    trials = list_trials(mongo_db, "eq-sma")
    assert len(trials) == 12
    rows = leaderboard(mongo_db, strategy="sma_crossover")
    assert rows[0]["study"] == "eq-sma" and rows[0]["objective"] == s.best_value
    assert rows[0]["params"] == s.best_params
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert {r["study"] for r in leaderboard(mongo_db, asset_class="equity")} == {
        "eq-sma",
        "eq-mom",
    }
    # another process resumes by name and sees everything
    more = run_study(
        bars, strategy="sma_crossover", study_name="eq-sma", n_trials=15,
        storage=optuna_storage(mongo_db), recorder=repo,
    )  # fmt: skip
    assert (more.trials_run, more.n_trials) == (3, 15)
    study = optuna.load_study(study_name="eq-sma", storage=optuna_storage(mongo_db))
    assert len(study.trials) == len(list_trials(mongo_db, "eq-sma")) == 15
    assert study.user_attrs["baseline"]["params"]["slow"] == 50
