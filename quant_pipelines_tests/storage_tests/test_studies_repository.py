"""The ``trials`` / ``studies`` mirrors stay one document per key on a database nobody indexed."""

from __future__ import annotations

from collections.abc import Iterator

import pymongo
import pytest
from pymongo.database import Database

from quant_pipelines.storage import ensure_indexes
from quant_pipelines.storage.studies import (
    StudiesRepository,
    list_trials,
    upsert_trial,
    upsert_trials,
)


@pytest.fixture
def bare_db(mongo_client: pymongo.MongoClient, db_name: str) -> Iterator[Database]:
    """A fresh database on which ``ensure_indexes`` was NOT called (unlike ``mongo_db``)."""
    db = mongo_client[db_name]
    yield db
    mongo_client.drop_database(db_name)


def _counts(db: Database, study: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for doc in db.trials.find({"study_name": study}, {"number": 1}):
        out[doc["number"]] = out.get(doc["number"], 0) + 1
    return out


def test_repository_writes_each_trial_once_without_ensure_indexes(bare_db: Database) -> None:
    first, second = StudiesRepository(bare_db), StudiesRepository(bare_db)
    running = [{"number": i, "state": "RUNNING", "params": {"x": i}} for i in range(3)]
    done = [{"number": i, "state": "COMPLETE", "value": float(i)} for i in range(3)]
    assert first.upsert_trials("s", running) == 3
    assert first.upsert_trials("s", done) == 3
    assert second.upsert_trials("s", [*done, {"number": 3, "state": "RUNNING"}]) == 4
    second.upsert_trial("s", 1, {"state": "FAIL"})

    assert _counts(bare_db, "s") == {0: 1, 1: 1, 2: 1, 3: 1}
    docs = {d["number"]: d for d in list_trials(bare_db, "s")}
    assert [docs[i]["state"] for i in range(4)] == ["COMPLETE", "FAIL", "COMPLETE", "RUNNING"]
    assert docs[2]["value"] == 2.0
    assert docs[2]["params"] == {"x": 2}  # the second write updated fields, dropped none
    first.upsert_study("s", {"status": "running"})
    second.upsert_study("s", {"status": "completed"})
    assert bare_db.studies.count_documents({"study_name": "s"}) == 1


def test_module_functions_write_each_trial_once_without_ensure_indexes(
    bare_db: Database,
) -> None:
    docs = [{"number": i, "state": "RUNNING"} for i in range(5)]
    upsert_trials(bare_db, "m", docs)
    upsert_trials(bare_db, "m", [{**d, "state": "COMPLETE"} for d in docs])
    upsert_trial(bare_db, "m", 4, {"state": "PRUNED"})
    assert _counts(bare_db, "m") == dict.fromkeys(range(5), 1)
    states = [d["state"] for d in list_trials(bare_db, "m")]
    assert states == ["COMPLETE"] * 4 + ["PRUNED"]


def test_repository_indexes_are_those_of_ensure_indexes(bare_db: Database) -> None:
    StudiesRepository(bare_db)
    ensure_indexes(bare_db)  # same names and keys: no conflict
    StudiesRepository(bare_db)  # and the other way round
    trials = bare_db.trials.index_information()["uniq_study_name_number"]
    assert trials["unique"] and [k for k, _ in trials["key"]] == ["study_name", "number"]
    studies = bare_db.studies.index_information()["uniq_study_name"]
    assert studies["unique"] and [k for k, _ in studies["key"]] == ["study_name"]


def test_an_equivalent_unique_index_of_another_name_is_used(bare_db: Database) -> None:
    bare_db.trials.create_index(
        [("study_name", pymongo.ASCENDING), ("number", pymongo.ASCENDING)],
        unique=True,
        name="legacy_key",
    )
    repo = StudiesRepository(bare_db)
    repo.upsert_trials("s", [{"number": 0, "state": "RUNNING"}])
    repo.upsert_trials("s", [{"number": 0, "state": "COMPLETE"}])
    assert _counts(bare_db, "s") == {0: 1}
    assert list_trials(bare_db, "s")[0]["state"] == "COMPLETE"


def test_without_a_possible_unique_index_trials_are_upserted(bare_db: Database) -> None:
    # A non-unique index holds the name: the unique one cannot be created.
    bare_db.trials.create_index(
        [("study_name", pymongo.ASCENDING), ("number", pymongo.ASCENDING)],
        name="uniq_study_name_number",
    )
    repo = StudiesRepository(bare_db)
    repo.upsert_trials("s", [{"number": 0, "state": "RUNNING"}, {"number": 1}])
    repo.upsert_trials("s", [{"number": 0, "state": "COMPLETE"}, {"number": 1}])
    assert _counts(bare_db, "s") == {0: 1, 1: 1}
    assert list_trials(bare_db, "s")[0]["state"] == "COMPLETE"
