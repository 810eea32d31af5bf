"""A repository rewrites only the changed fields of the trial documents it wrote, counted by a
pymongo CommandListener on the real embedded server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from pymongo.database import Database
from pymongo.errors import OperationFailure

from quant_pipelines.storage import make_client
from quant_pipelines.storage.studies import StudiesRepository, list_trials


class _Writes(monitoring.CommandListener):
    """The write commands sent on ``trials``."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if (
            event.command_name in ("insert", "update")
            and event.command.get(event.command_name) == "trials"
        ):
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[dict[str, Any]]:
        out, self.commands = self.commands, []
        return out


@pytest.fixture
def repo(mongo_uri: str, mongo_db: Database) -> Iterator[tuple[StudiesRepository, _Writes, str]]:
    """A repository on the test database through a client whose trial writes are recorded."""
    listener = _Writes()
    app = f"trial-writes-{uuid.uuid4().hex[:8]}"
    client: MongoClient = make_client(mongo_uri, app_name=app, event_listeners=[listener])
    yield StudiesRepository(client[mongo_db.name]), listener, app
    client.close()


def _doc(number: int, **kw: Any) -> dict[str, Any]:
    return {
        "number": number,
        "state": "COMPLETE",
        "value": float(number),
        "params": {"fast": number, "slow": 50},
        "deflated_sharpe": 0.5,
        **kw,
    }


def _stored(db: Database) -> dict[int, dict[str, Any]]:
    return {d["number"]: d for d in list_trials(db, "s")}


def test_a_rewrite_sets_only_the_changed_fields(repo, mongo_db: Database) -> None:
    repository, writes, _ = repo
    docs = [_doc(i) for i in range(3)]
    assert repository.upsert_trials("s", docs) == 3
    assert [c["insert"] for c in writes.take()] == ["trials"]  # new trials: one bulk insert

    final = [_doc(0), _doc(1, deflated_sharpe=0.9), _doc(2, value=2)]  # 2 (int) is not 2.0
    assert repository.upsert_trials("s", final) == 3
    (update,) = writes.take()
    sets = sorted(sorted(u["u"]["$set"]) for u in update["updates"])
    assert sets == [["deflated_sharpe", "updated_at"], ["updated_at", "value"]]
    stored = _stored(mongo_db)
    for doc in final:
        assert {k: stored[doc["number"]][k] for k in doc} == doc
    assert type(stored[2]["value"]) is int

    assert repository.upsert_trials("s", final) == 3  # nothing changed: nothing sent
    assert writes.take() == []


def test_trials_written_elsewhere_or_gone_are_written_whole(repo, mongo_db: Database) -> None:
    repository, writes, _ = repo
    repository.upsert_trials("s", [_doc(0), _doc(1)])
    repository.upsert_trial("s", 0, {"state": "FAIL"})  # some other way: forgotten
    mongo_db.trials.delete_one({"study_name": "s", "number": 1})  # gone meanwhile
    writes.take()

    repository.upsert_trials("s", [_doc(0, state="PRUNED"), _doc(1, deflated_sharpe=0.7)])
    stored = _stored(mongo_db)
    assert stored[0]["state"] == "PRUNED" and stored[0]["params"] == {"fast": 0, "slow": 50}
    assert {k: stored[1][k] for k in _doc(1)} == _doc(1, deflated_sharpe=0.7)  # whole again
    assert any("insert" in c for c in writes.take())


def test_after_a_failed_rewrite_the_next_one_is_whole(
    repo, mongo_client: MongoClient, mongo_db: Database
) -> None:
    repository, writes, app = repo
    repository.upsert_trials("s", [_doc(0), _doc(1)])
    data = {"failCommands": ["update"], "appName": app, "errorCode": 2}  # BadValue
    mode = {"times": 1}
    mongo_client.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})
    try:
        with pytest.raises(OperationFailure):
            repository.upsert_trials("s", [_doc(0, deflated_sharpe=0.1), _doc(1)])
    finally:
        mongo_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    writes.take()
    repository.upsert_trials("s", [_doc(0, deflated_sharpe=0.2), _doc(1)])
    commands = writes.take()
    assert commands[0]["insert"] == "trials"  # not remembered any more: written whole
    assert len(commands[0]["documents"]) == 2
    assert _stored(mongo_db)[0]["deflated_sharpe"] == 0.2
