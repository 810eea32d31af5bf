"""The MongoDB journal stands on Optuna's public API and the persisted journal format only.

If one of these fails after an Optuna upgrade, the journal format or a public method the
storage relies on has changed: read the release notes before relaxing anything here.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from pymongo.database import Database

from quant_pipelines.storage import (
    _journal_backend,
    _journal_io,
    _journal_leases,
    _journal_reader,
    _journal_reaping,
    optuna_journal,
)
from quant_pipelines.storage._journal_backend import TRIAL_LOCAL_OPS
from quant_pipelines.storage.optuna_journal import MongoJournalStorage, optuna_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
MODULES = (
    _journal_backend,
    _journal_io,
    _journal_leases,
    _journal_reader,
    _journal_reaping,
    optuna_journal,
)


class _Recorder(BaseJournalBackend):
    """An in-memory backend on the public contract only, recording what it is given."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


def test_trial_local_op_codes_are_the_journal_formats() -> None:
    backend = _Recorder()
    storage = JournalStorage(backend)
    study = optuna.create_study(study_name="format", storage=storage)
    trial = study.ask()
    sid = storage.get_study_id_from_name("format")
    trial_id = storage.get_trial_id_from_study_id_trial_number(sid, trial.number)
    del backend.logs[:]
    trial.suggest_float("x", 0, 1)
    trial.report(0.5, 0)
    trial.set_user_attr("u", 1)
    storage.set_trial_system_attr(trial_id, "s", 2)
    local = list(backend.logs)
    study.tell(trial, 1.0)
    (state,) = backend.logs[len(local) :]
    assert {log["op_code"] for log in local} == TRIAL_LOCAL_OPS
    assert all(log["trial_id"] == trial_id and "worker_id" in log for log in local)
    assert state["op_code"] not in TRIAL_LOCAL_OPS and state["trial_id"] == trial_id
    study.enqueue_trial({"x": 0.5})
    assert backend.logs[-1]["op_code"] not in TRIAL_LOCAL_OPS  # creating a trial: never


def _private_attributes(module: object) -> tuple[set[str], set[str]]:
    """Private attributes a module reads, and those it defines (assigns or declares)."""
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    read: set[str] = set()
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if not node.attr.startswith("__"):
                target = isinstance(node.ctx, ast.Store)
                (defined if target else read).add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name.startswith("_"):
            if not node.name.startswith("__"):
                defined.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("optuna"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert not any(a.name.startswith("_") for a in node.names), node.module
    return read, defined


def test_no_private_optuna_name_is_used() -> None:
    read: set[str] = set()
    defined: set[str] = set()
    for module in MODULES:
        r, d = _private_attributes(module)
        read |= r
        defined |= d
    assert read <= defined, f"private names not defined here: {sorted(read - defined)}"
    # Nor may ours shadow JournalStorage's own private state (a new Optuna could add some).
    plain = JournalStorage(_Recorder())
    clash = defined & (set(vars(plain)) | set(dir(JournalStorage)))
    assert not clash, f"MongoJournalStorage shadows JournalStorage privates: {sorted(clash)}"


def _reader(db: Database) -> MongoJournalStorage:
    return optuna_storage(db, heartbeat_interval=None, read_interval=0.0)


def test_a_popped_foreign_trial_is_leased_with_its_study_and_its_logs_deferred(
    mongo_db: Database,
) -> None:
    creator = _reader(mongo_db)
    optuna.create_study(study_name="first", storage=creator)
    study = optuna.create_study(study_name="second", storage=creator)
    study.enqueue_trial({"x": 0.25})
    sid = creator.get_study_id_from_name("second")
    worker = optuna_storage(mongo_db, heartbeat_interval=0.1, grace_period=0.5)
    mine = optuna.load_study(study_name="second", storage=worker)
    trial = mine.ask()
    assert trial.suggest_float("x", 0, 1) == 0.25
    trial_id = worker.get_trial_id_from_study_id_trial_number(sid, trial.number)
    trial.set_user_attr("seen", "late")
    assert _reader(mongo_db).get_trial(trial_id).user_attrs == {}  # deferred
    deadline = time.monotonic() + 5.0
    while (lease := mongo_db.optuna_journal_leases.find_one({"_id": trial_id})) is None:
        assert time.monotonic() < deadline, "the popped trial was never leased"
        time.sleep(0.05)
    assert lease["study"] == sid
    mine.tell(trial, 1.0)
    assert _reader(mongo_db).get_trial(trial_id).user_attrs == {"seen": "late"}
    worker.close()


def test_logs_on_a_trial_this_process_does_not_run_are_written_at_once(
    mongo_db: Database,
) -> None:
    runner = optuna_storage(mongo_db, heartbeat_interval=None, read_interval=0.0)
    trial = optuna.create_study(study_name="o", storage=runner).ask()
    sid = runner.get_study_id_from_name("o")
    trial_id = runner.get_trial_id_from_study_id_trial_number(sid, trial.number)
    other = _reader(mongo_db)
    other.set_trial_user_attr(trial_id, "note", "from elsewhere")
    assert _reader(mongo_db).get_trial(trial_id).user_attrs == {"note": "from elsewhere"}
    trial.set_user_attr("own", 1)  # the runner's own trial: deferred
    assert _reader(mongo_db).get_trial(trial_id).user_attrs == {"note": "from elsewhere"}
