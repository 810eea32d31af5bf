"""run_study on the MongoDB journal: mirrors, statistics, leaderboard, resume from a fresh view."""

from __future__ import annotations

import optuna
from pymongo.database import Database

from quant_pipelines.optimizer import run_study
from quant_pipelines.services import build_leaderboard
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository, get_study, list_trials


def test_study_on_mongodb_is_mirrored_and_ranked(bars, mongo_db: Database) -> None:
    repo = StudiesRepository(mongo_db)
    kw = {"storage": optuna_storage(mongo_db), "recorder": repo, "asset_class": "equity"}
    s = run_study(bars, strategy="sma_crossover", study_name="eq-sma", n_trials=12, **kw)
    run_study(
        bars, strategy="momentum", study_name="eq-mom", n_trials=6, engine="hyperopt",
        recorder=repo, asset_class="equity", min_trades=0,
    )  # fmt: skip
    doc = get_study(mongo_db, "eq-sma")
    assert doc["status"] == "completed" and doc["progress"]["done"] == 12
    assert doc["best"]["params"] == s.best_params
    assert doc["improvement"] == s.improvement
    assert doc["validation"]["method"] == "walk_forward"
    stats = doc["statistics"]
    assert stats["n_trials_tried"] == s.statistics["n_trials_tried"] >= 2
    assert stats["pbo"] is not None or stats["pbo_reason"]
    assert 0.0 <= stats["spa"]["pvalue"] <= 1.0
    trials = list_trials(mongo_db, "eq-sma")
    assert len(trials) == 12
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    for t in complete:  # final DSRs over the whole study, stored on every trial
        assert t["deflated_sharpe"] == stats["deflated_sharpe"][str(t["number"])]
        assert t["validation"] == t["value"] and t["in_sample"] is not None
        assert t["holdout"] is not None
    report = build_leaderboard(mongo_db, objective="sharpe", strategy="sma_crossover")
    rows = report.rows
    assert {r["study"] for r in rows} == {"eq-sma"}
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    ranked = [r["validation"] for r in rows]
    assert ranked == sorted(ranked, reverse=True)
    assert rows[0]["trial"] == s.best_number  # the study's best is its best on validation
    every = build_leaderboard(mongo_db)
    assert {r["study"] for r in every.rows} == {"eq-sma", "eq-mom"}
    assert {p["study"] for p in every.promotions} == {"eq-sma", "eq-mom"}
    # another process resumes by name and sees everything
    more = run_study(
        bars, strategy="sma_crossover", study_name="eq-sma", n_trials=15,
        storage=optuna_storage(mongo_db), recorder=repo,
    )  # fmt: skip
    assert (more.trials_run, more.n_trials) == (3, 15)
    study = optuna.load_study(study_name="eq-sma", storage=optuna_storage(mongo_db))
    assert len(study.trials) == len(list_trials(mongo_db, "eq-sma")) == 15
    assert study.user_attrs["baseline"]["params"]["slow"] == 50
    resumed = get_study(mongo_db, "eq-sma")["statistics"]
    assert resumed["n_trials_tried"] >= stats["n_trials_tried"]
