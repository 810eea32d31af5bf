"""The MongoDB journal backend, leases and the study/trial mirrors, on the real server."""

from __future__ import annotations

import json
import threading
import time

import optuna
import pytest
from pymongo.database import Database

from quant_pipelines.storage.optuna_journal import (
    MongoJournalBackend,
    MongoJournalStorage,
    optuna_storage,
)
from quant_pipelines.storage.studies import (
    StudiesRepository,
    get_study,
    leaderboard_inputs,
    list_trials,
    promoted_trials,
    record_promotions,
    update_progress,
    upsert_study,
    upsert_trial,
    upsert_trials,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _numbers(db: Database) -> list[int]:
    return sorted(d["log_number"] for d in db.optuna_journal.find({}, {"log_number": 1}))


def _trial_id(storage: MongoJournalStorage, study: str, trial: optuna.Trial) -> int:
    """A trial's storage id, by public API."""
    sid = storage.get_study_id_from_name(study)
    return storage.get_trial_id_from_study_id_trial_number(sid, trial.number)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    n = trial.suggest_int("n", 1, 10)
    trial.report(x, 0)
    trial.set_user_attr("metrics", {"n": n, "inf": float("inf")})
    trial.set_constraint("small", x - 4.0)
    return -((x - 1.0) ** 2) + n


def test_logs_round_trip_in_order(mongo_db: Database) -> None:
    writer = MongoJournalBackend(mongo_db)
    logs = [{"op_code": 8, "i": i, "user_attr": {"k": [1, 2]}, "m": {"1": 0.5}} for i in range(5)]
    for log in logs[:2]:
        writer.append_logs([log])
    writer.append_logs(logs[2:])  # one document for the batch
    assert list(writer.read_logs(0)) == logs
    reader = MongoJournalBackend(mongo_db)
    assert list(reader.read_logs(0)) == logs
    assert list(reader.read_logs(3)) == logs[3:]
    assert _numbers(mongo_db) == [0, 1, 2]


def test_concurrent_writers_lose_and_duplicate_nothing(mongo_db: Database) -> None:
    n_writers, n_logs = 4, 30
    backends = [MongoJournalBackend(mongo_db) for _ in range(n_writers)]

    def write(w: int) -> None:
        for i in range(n_logs):
            backends[w].append_logs([{"op_code": 8, "w": w, "i": i}])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(n_writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _numbers(mongo_db) == list(range(n_writers * n_logs))  # gap-free, unique
    logs = list(MongoJournalBackend(mongo_db).read_logs(0))
    assert sorted((x["w"], x["i"]) for x in logs) == [
        (w, i) for w in range(n_writers) for i in range(n_logs)
    ]
    for w in range(n_writers):  # each writer's own order is kept
        assert [x["i"] for x in logs if x["w"] == w] == list(range(n_logs))
    for b in backends:  # every writer sees the same sequence; the first read after its own
        first = list(b.read_logs(0))  # write is answered from memory: a prefix
        assert first == logs[: len(first)]
        assert list(b.read_logs(0)) == logs


def test_reader_stops_at_a_gap(mongo_db: Database) -> None:
    backend = MongoJournalBackend(mongo_db)
    backend.append_logs([{"op_code": 8, "i": 0}])
    mongo_db.optuna_journal.insert_one({"_id": "late", "log_number": 2, "logs": "[{}]"})
    assert [x["i"] for x in MongoJournalBackend(mongo_db).read_logs(0)] == [0]


def test_study_replays_identically_in_a_new_process_view(mongo_db: Database) -> None:
    storage = optuna_storage(mongo_db, heartbeat_interval=None)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.optimize(_objective, n_trials=8)
    fresh = optuna.load_study(study_name="s", storage=optuna_storage(mongo_db))
    a, b = study.get_trials(), fresh.get_trials()
    assert [(t.number, t.state, t.params, t.values) for t in a] == [
        (t.number, t.state, t.params, t.values) for t in b
    ]
    assert b[0].user_attrs["metrics"]["inf"] == float("inf")
    assert b[0].intermediate_values == {0: b[0].params["x"]}
    assert b[0].constraints == {"small": b[0].params["x"] - 4.0}
    assert fresh.best_trial.number == study.best_trial.number
    # a trial's params, report, attribute and state share one document with its state
    assert len(_numbers(mongo_db)) <= 3 + 2 * 8


def test_deferred_logs_are_seen_locally_at_once_and_elsewhere_after_the_state(
    mongo_db: Database,
) -> None:
    storage = optuna_storage(mongo_db, heartbeat_interval=None, read_interval=0.0)
    study = optuna.create_study(study_name="d", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("a", 1)
    assert storage.get_trial(_trial_id(storage, "d", trial)).user_attrs == {"a": 1}
    other = optuna.load_study(study_name="d", storage=optuna_storage(mongo_db, read_interval=0.0))
    assert other.trials[0].user_attrs == {}
    study.tell(trial, 1.0)
    done = optuna.load_study(study_name="d", storage=optuna_storage(mongo_db)).trials[0]
    assert done.user_attrs == {"a": 1}
    assert done.state == optuna.trial.TrialState.COMPLETE


def test_dead_workers_trial_fails_and_is_requeued_after_the_grace(mongo_db: Database) -> None:
    dead = optuna_storage(mongo_db, heartbeat_interval=0.2, grace_period=0.6)
    study = optuna.create_study(study_name="lease", storage=dead)
    trial = study.ask()
    x = trial.suggest_float("x", 0, 1)
    time.sleep(0.3)  # the lease thread stamps the trial (and writes its params)
    dead.close()  # the worker dies: no more stamps
    alive = optuna_storage(mongo_db, heartbeat_interval=0.2, grace_period=0.6)
    live = optuna.load_study(study_name="lease", storage=alive)
    sid = alive.get_study_id_from_name("lease")
    assert alive.reap_stale_trials(sid) == []  # still within its lease
    time.sleep(0.8)
    next_trial = live.ask()  # asking for a trial reaps the stale one
    states = {t.number: t.state for t in live.get_trials()}
    assert states[trial.number] == optuna.trial.TrialState.FAIL
    waiting = [t for t in live.get_trials() if t.system_attrs.get("failed_trial") == trial.number]
    assert len(waiting) == 1
    assert waiting[0].params == {"x": x}
    live.tell(next_trial, 0.0)
    retried = live.ask()  # the re-queued trial is popped first
    assert retried.number == waiting[0].number
    assert retried.suggest_float("x", 0, 1) == x
    alive.close()


def test_a_live_workers_lease_is_kept(mongo_db: Database) -> None:
    worker = optuna_storage(mongo_db, heartbeat_interval=0.1, grace_period=0.4)
    study = optuna.create_study(study_name="live", storage=worker)
    trial = study.ask()
    other = optuna_storage(mongo_db, heartbeat_interval=0.1, grace_period=0.4)
    time.sleep(0.8)
    assert other.reap_stale_trials(other.get_study_id_from_name("live")) == []
    study.tell(trial, 1.0)
    worker.close()
    tid = _trial_id(worker, "live", trial)
    assert mongo_db.optuna_journal_leases.count_documents({"_id": tid}) <= 1


def test_storage_arguments_are_checked(mongo_db: Database) -> None:
    backend = MongoJournalBackend(mongo_db)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        MongoJournalStorage(backend, heartbeat_interval=0)
    with pytest.raises(ValueError, match="grace_period"):
        MongoJournalStorage(backend, heartbeat_interval=2.0, grace_period=1.0)


def test_mirrors_are_upserted_on_their_keys(mongo_db: Database) -> None:
    upsert_study(mongo_db, "s1", {"strategy": "sma_crossover", "status": "running"})
    update_progress(mongo_db, "s1", {"trials_done": 3}, best={"number": 1}, status="completed")
    upsert_study(mongo_db, "s1", {"seed": 7})
    doc = get_study(mongo_db, "s1")
    assert doc["progress"] == {"trials_done": 3}
    assert (doc["status"], doc["seed"], doc["best"]["number"]) == ("completed", 7, 1)
    assert mongo_db.studies.count_documents({}) == 1
    upsert_trial(mongo_db, "s1", 0, {"state": "RUNNING"})
    upsert_trials(mongo_db, "s1", [{"number": 0, "state": "COMPLETE"}, {"number": 1}])
    assert [(d["number"], d.get("state")) for d in list_trials(mongo_db, "s1")] == [
        (0, "COMPLETE"),
        (1, None),
    ]
    assert upsert_trials(mongo_db, "s1", []) == 0


def _trial(study: str, number: int, value: float, **kw: object) -> dict:
    return {
        "number": number,
        "state": "COMPLETE",
        "feasible": True,
        "value": value,
        "strategy": "sma_crossover",
        "asset_class": "equity",
        "params": {"fast": number},
        "is_metrics": {"max_drawdown": -0.1, "n_trades": 5},
        "oos_metrics": {"sharpe": value / 2},
        "deflated_sharpe": 0.9,
        **kw,
    }


def test_leaderboard_inputs_are_complete_feasible_trials_of_matching_studies(
    mongo_db: Database,
) -> None:
    repo = StudiesRepository(mongo_db)
    for name, strategy, asset_class, objective in (
        ("a", "sma_crossover", "equity", "sharpe"),
        ("b", "sma_crossover", "crypto", "sharpe"),
        ("c", "sma_crossover", "equity", "total_return"),
        ("d", "momentum", "equity", "sharpe"),
    ):
        repo.upsert_study(
            name, {"strategy": strategy, "asset_class": asset_class, "objective": objective}
        )
    repo.upsert_trials("a", [_trial("a", 0, 1.0), _trial("a", 1, 3.0, feasible=False)])
    repo.upsert_trials("b", [_trial("b", 0, 2.0), _trial("b", 1, 0.5)])
    repo.upsert_trials("c", [_trial("c", 0, 9.0, state="PRUNED"), _trial("c", 1, 1.5)])
    repo.upsert_trials("d", [_trial("d", 0, 4.0)])
    found, trials = repo.leaderboard_inputs(strategy="sma_crossover")
    assert [s["study_name"] for s in found] == ["a", "b", "c"]
    assert sorted((t["study_name"], t["number"]) for t in trials) == [
        ("a", 0),
        ("b", 0),
        ("b", 1),
        ("c", 1),
    ]
    found, trials = leaderboard_inputs(mongo_db, asset_class="crypto")
    assert [s["study_name"] for s in found] == ["b"] and len(trials) == 2
    found, _ = leaderboard_inputs(mongo_db, objective="total_return")
    assert [s["study_name"] for s in found] == ["c"]
    assert json.dumps(trials, default=str)


def test_promotions_are_recorded_and_read_back(mongo_db: Database) -> None:
    repo = StudiesRepository(mongo_db)
    for name in ("a", "b"):
        repo.upsert_study(
            name,
            {
                "strategy": "sma_crossover",
                "asset_class": "equity",
                "objective": "sharpe",
                "symbols": ["SPY"],
                "baseline": {"oos_metrics": {"sharpe": 0.25}, "values": [0.1]},
            },
        )
        repo.upsert_trials(name, [_trial(name, 0, 1.0), _trial(name, 1, 2.0)])
    decisions = [
        {"study": "a", "trial": 1, "promoted": True, "reason": "passes every test"},
        {"study": "b", "trial": 1, "promoted": False, "reason": "PBO 0.70 > 0.50"},
    ]
    assert record_promotions(mongo_db, decisions) == 2
    (row,) = promoted_trials(mongo_db)
    assert (row["study"], row["trial"], row["params"]) == ("a", 1, {"fast": 1})
    assert row["holdout_sharpe"] == 1.0 and row["baseline_holdout_sharpe"] == 0.25
    assert row["promotion"]["decided_at"] is not None
    assert promoted_trials(mongo_db, asset_class="crypto") == []
    record_promotions(mongo_db, [{**decisions[0], "promoted": False}])
    assert promoted_trials(mongo_db) == []
