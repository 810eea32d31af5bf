"""The journal storage's kept trial lists (``_journal_view``) match Optuna's own listing."""

from __future__ import annotations

import optuna
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState
from pymongo.database import Database

from quant_pipelines.storage.optuna_journal import MongoJournalStorage, optuna_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
STATES = (None, (TrialState.WAITING,), (TrialState.RUNNING,), (TrialState.COMPLETE,))


def _listing(storage: MongoJournalStorage, study_id: int, states: object) -> list:
    """Optuna's own listing (built anew), as (number, state, params, values, user attrs)."""
    trials = JournalStorage.get_all_trials(storage, study_id, deepcopy=False, states=states)
    return [(t.number, t.state, t.params, t.values, t.user_attrs) for t in trials]


def _view(storage: MongoJournalStorage, study_id: int, states: object) -> list:
    trials = storage.get_all_trials(study_id, deepcopy=False, states=states)
    return [(t.number, t.state, t.params, t.values, t.user_attrs) for t in trials]


def _check(storage: MongoJournalStorage, study_id: int) -> None:
    for states in STATES:
        assert _view(storage, study_id, states) == _listing(storage, study_id, states), states


def test_kept_lists_follow_own_and_other_processes_writes(mongo_db: Database) -> None:
    mine = optuna_storage(mongo_db, heartbeat_interval=None, read_interval=0.0)
    other = optuna_storage(mongo_db, heartbeat_interval=None, read_interval=0.0)
    study = optuna.create_study(study_name="views", storage=mine)
    optuna.create_study(study_name="views_other", storage=mine).enqueue_trial({"y": 1.0})
    sid = mine.get_study_id_from_name("views")
    _check(mine, sid)  # empty
    study.enqueue_trial({"x": 0.5})
    _check(mine, sid)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    _check(mine, sid)
    trial.set_user_attr("u", {"a": 1})
    study.tell(trial, 2.0)
    _check(mine, sid)
    # Another process adds a trial and finishes it; this one sees both once it reads.
    theirs = optuna.load_study(study_name="views", storage=other)
    t2 = theirs.ask()
    t2.suggest_float("x", 0, 1)
    _check(mine, sid)  # RUNNING elsewhere
    theirs.tell(t2, 3.0)
    for _ in range(3):
        t = study.ask()
        t.suggest_float("x", 0, 1)
        study.tell(
            t, 1.0 if t.number % 2 else None, state=None if t.number % 2 else TrialState.FAIL
        )
        _check(mine, sid)
    assert [t.number for t in mine.get_all_trials(sid)] == list(range(5))
    # deepcopy: the caller's copy is its own
    copied = mine.get_all_trials(sid, deepcopy=True)
    copied[0].user_attrs["u"] = "changed"
    assert mine.get_all_trials(sid)[0].user_attrs == {"u": {"a": 1}}
    mine.close()
    other.close()


def test_a_deleted_study_is_unknown_and_a_new_one_listed(mongo_db: Database) -> None:
    storage = optuna_storage(mongo_db, heartbeat_interval=None, read_interval=0.0)
    study = optuna.create_study(study_name="gone", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    sid = storage.get_study_id_from_name("gone")
    assert len(storage.get_all_trials(sid)) == 3
    optuna.delete_study(study_name="gone", storage=storage)
    try:
        storage.get_all_trials(sid)
    except KeyError:
        pass
    else:
        raise AssertionError("a deleted study's trials were listed")
    again = optuna.create_study(study_name="gone", storage=storage)
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    new_sid = storage.get_study_id_from_name("gone")
    _check(storage, new_sid)
    assert [t.number for t in storage.get_all_trials(new_sid)] == [0, 1]
    storage.close()
