"""What the MongoDB journal sends to the server, counted by a pymongo CommandListener on the
real embedded server: incremental reads, writes per trial, and the background write."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import pytest
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import run_study
from quant_pipelines.storage import make_client
from quant_pipelines.storage.optuna_journal import MongoJournalBackend, optuna_storage
from quant_pipelines.storage.studies import StudiesRepository

optuna.logging.set_verbosity(optuna.logging.WARNING)
JOURNAL = "optuna_journal"


class _Commands(monitoring.CommandListener):
    """Every command on the journal's collections, with the documents each read returned."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.answered: list[str] = []
        self.docs_returned: dict[str, int] = {}  # collection -> documents in read replies
        self.numbers_read: list[int] = []  # log numbers of the journal documents read
        self.on_succeeded: Callable[[monitoring.CommandSucceededEvent], None] | None = None
        self._cursors: dict[int, str] = {}
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        target = event.command.get(name)
        coll = target if isinstance(target, str) else event.command.get("collection", "")
        with self._lock:
            self.sent.append((name, coll, dict(event.command)))
            if name == "getMore":
                self._cursors[event.request_id] = self._cursors.get(target, "")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor") if isinstance(event.reply, dict) else None
        with self._lock:
            self.answered.append(event.command_name)
            if cursor is not None:
                ns = cursor.get("ns", "")
                coll = ns.split(".", 1)[1] if "." in ns else ns
                batch = cursor.get("firstBatch", cursor.get("nextBatch", []))
                self.docs_returned[coll] = self.docs_returned.get(coll, 0) + len(batch)
                if coll == JOURNAL:
                    self.numbers_read += [d["log_number"] for d in batch if "logs" in d]
        if self.on_succeeded is not None:
            self.on_succeeded(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def count(self, name: str, coll: str) -> int:
        with self._lock:
            return sum(n == name and c == coll for n, c, _ in self.sent)

    def commands(self, name: str, coll: str) -> list[dict[str, Any]]:
        with self._lock:
            return [cmd for n, c, cmd in self.sent if n == name and c == coll]


@pytest.fixture
def watched(mongo_uri: str, mongo_db: Database) -> Iterator[tuple[Database, _Commands]]:
    """The test database through a client of its own, whose commands are recorded."""
    listener = _Commands()
    app = f"journal-{uuid.uuid4().hex[:8]}"
    client: MongoClient = make_client(mongo_uri, app_name=app, event_listeners=[listener])
    yield client[mongo_db.name], listener
    client.close()


def _bars() -> Any:
    return SyntheticSource(0).bars("SPY", "2016-01-01", "2017-12-31")


def test_a_study_reads_each_journal_document_once_and_writes_three_per_trial(
    watched: tuple[Database, _Commands], mongo_db: Database
) -> None:
    db, seen = watched
    n_trials = 25
    start = time.monotonic()
    storage = optuna_storage(db)  # the production settings: leases on, deferred logs
    try:
        summary = run_study(
            _bars(),
            strategy="sma_crossover",
            study_name="counted",
            n_trials=n_trials,
            n_folds=2,
            storage=storage,
            recorder=StudiesRepository(db),
        )
    finally:
        storage.close()
    elapsed = time.monotonic() - start
    trials = summary.n_trials + summary.n_failed
    documents = mongo_db[JOURNAL].count_documents({})
    inserts = seen.commands("insert", JOURNAL)
    assert len(inserts) == documents  # every append landed once, none was repeated
    # per trial: its params (in the background) and its attributes and state together with
    # the next trial's creation; plus the study's creation, two attributes and the baseline
    assert documents <= 2 * trials + 5
    # plain commands: no server-side record of retryable writes to prune on every append
    assert not [cmd for cmd in inserts if "txnNumber" in cmd]
    # reads are incremental (no document read twice; its own are read back only when a read
    # meets a background write in flight), at most once per read_interval
    ran = list(seen.numbers_read)
    assert len(set(ran)) == len(ran) < documents // 2
    assert seen.count("find", JOURNAL) <= 1 + elapsed / 0.2
    # one lease stamp per heartbeat interval (5 s), not one per write
    assert seen.count("update", f"{JOURNAL}_leases") <= 1 + elapsed / 5.0

    # A fresh reader reads every document once; afterwards only what is new.
    reader = optuna_storage(db, heartbeat_interval=None, read_interval=0.0)
    study = optuna.load_study(study_name="counted", storage=reader)
    assert len(study.get_trials()) == trials
    assert sorted(seen.numbers_read[len(ran) :]) == list(range(documents))
    writer = optuna.load_study(study_name="counted", storage=optuna_storage(mongo_db))
    writer.enqueue_trial({"fast": 5, "slow": 50})
    assert len(study.get_trials()) == trials + 1
    assert seen.numbers_read[len(ran) + documents :] == [documents]  # the one new document


def _arm(client: MongoClient, app: str, block_ms: int) -> None:
    data = {
        "failCommands": ["insert"],
        "appName": app,
        "blockConnection": True,
        "blockTimeMS": block_ms,
    }
    client.admin.command({"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": data})


def _log(trial_id: int, key: str) -> dict[str, Any]:
    return {"op_code": 8, "worker_id": "w", "trial_id": trial_id, "user_attr": {key: 1}}


def test_a_background_write_lets_reads_and_deferred_logs_through(
    mongo_uri: str, mongo_client: MongoClient, mongo_db: Database
) -> None:
    listener = _Commands()
    app = f"journal-bg-{uuid.uuid4().hex[:8]}"
    client = make_client(mongo_uri, app_name=app, event_listeners=[listener])
    backend = MongoJournalBackend(client[mongo_db.name])
    backend.hold(1)
    first, second = _log(1, "a"), _log(1, "b")
    backend.append_logs([first])  # deferred: handed out, not written
    assert list(backend.read_logs(0)) == [first]
    _arm(mongo_client, app, block_ms=3_000)
    try:
        backend.flush(wait=False)
        while listener.count("insert", JOURNAL) == 0:  # the write is in flight (blocked)
            threading.Event().wait(0.01)
        backend.append_logs([second])  # deferred again, while the first write waits
        assert list(backend.read_logs(1)) == [second]
        assert "insert" not in listener.answered  # neither waited for the write
        assert list(MongoJournalBackend(mongo_db).read_logs(0)) == []
        backend.flush()  # waits for the write in flight, then writes the second log
        assert list(backend.read_logs(2)) == []
    finally:
        mongo_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        client.close()
    assert list(MongoJournalBackend(mongo_db).read_logs(0)) == [first, second]
    assert sorted(d["log_number"] for d in mongo_db[JOURNAL].find()) == [0, 1]


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "new"])
def test_a_read_that_meets_its_own_write_in_flight_hands_each_log_out_once(
    watched: tuple[Database, _Commands], mongo_db: Database, deferred: bool
) -> None:
    db, seen = watched
    backend = MongoJournalBackend(db)
    other = MongoJournalBackend(mongo_db)
    other.append_logs([_log(0, "before")])
    assert len(list(backend.read_logs(0))) == 1
    mine = _log(1, "mine")
    met: list[list[dict[str, Any]]] = []

    def read_when_landed(event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "insert" and not met:  # landed, not yet acknowledged
            met.append(list(backend.read_logs(1)))

    seen.on_succeeded = read_when_landed
    if deferred:
        backend.hold(1)
        backend.append_logs([mine])  # handed out now
        assert list(backend.read_logs(1)) == [mine]
        backend.flush(wait=False)
        backend.flush()
    else:
        backend.append_logs([mine])  # handed out once written
    seen.on_succeeded = None
    assert met == [[mine]]  # the read found the document: its log, once
    assert list(backend.read_logs(1)) == [mine]
    other.append_logs([_log(2, "after")])
    assert list(backend.read_logs(2)) == [_log(2, "after")]
    backend.append_logs([_log(3, "last")])  # numbered right after what it read: no gap
    numbers = sorted(d["log_number"] for d in mongo_db[JOURNAL].find())
    assert numbers == [0, 1, 2, 3]
    assert list(MongoJournalBackend(mongo_db).read_logs(0)) == [
        _log(0, "before"),
        mine,
        _log(2, "after"),
        _log(3, "last"),
    ]


def _reader(db: Database) -> optuna.Study:
    return optuna.load_study(
        study_name="r", storage=optuna_storage(db, heartbeat_interval=None, read_interval=0.0)
    )


def test_a_result_is_written_with_the_next_trial_or_when_the_run_settles(
    mongo_db: Database,
) -> None:
    storage = optuna_storage(mongo_db, read_interval=0.0)
    study = optuna.create_study(study_name="r", storage=storage)
    first = study.ask()
    first.suggest_float("x", 0, 1)
    study.tell(first, 1.0)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE  # seen here at once
    assert _reader(mongo_db).trials[0].state == optuna.trial.TrialState.RUNNING
    documents = mongo_db[JOURNAL].count_documents({})
    second = study.ask()  # one document: the first trial's result and the second's creation
    assert mongo_db[JOURNAL].count_documents({}) == documents + 1
    done = _reader(mongo_db).trials
    assert [t.state for t in done] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.RUNNING,
    ]
    assert done[0].params == first.params and done[0].value == 1.0
    study.tell(second, 2.0)
    storage.settle(storage.get_study_id_from_name("r"), timeout=0)  # a run that ends
    assert _reader(mongo_db).trials[1].value == 2.0
    storage.close()


def test_a_stale_lease_writes_the_result_at_once(mongo_db: Database) -> None:
    storage = optuna_storage(mongo_db, heartbeat_interval=0.05, grace_period=0.1)
    study = optuna.create_study(study_name="r", storage=storage)
    trial = study.ask()
    storage.close()  # no more stamps: the lease grows older than grace - interval
    threading.Event().wait(0.2)
    study.tell(trial, 1.0)
    assert _reader(mongo_db).trials[0].state == optuna.trial.TrialState.COMPLETE


def test_a_result_that_lands_after_a_reaper_s_failure_is_reported(
    mongo_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    worker = optuna_storage(mongo_db, read_interval=0.0)
    study = optuna.create_study(study_name="r", storage=worker)
    trial = study.ask()
    tid = worker.get_trial_id_from_study_id_trial_number(
        worker.get_study_id_from_name("r"), trial.number
    )
    study.tell(trial, 1.0)  # deferred: handed out here, not written yet
    reaper = optuna_storage(mongo_db, heartbeat_interval=None, read_interval=0.0)
    assert reaper.set_trial_state_values(tid, optuna.trial.TrialState.FAIL)  # as if reaped
    assert worker.backend.lost_races == []
    with caplog.at_level("ERROR"):
        study.ask()  # its write lands after the reaper's and reads it
    worker.close()
    assert worker.backend.lost_races == [tid]
    assert f"trial id {tid} was finished elsewhere" in caplog.text
    # every other reader replays the journal's order: the reaper's failure stands
    assert _reader(mongo_db).trials[0].state == optuna.trial.TrialState.FAIL


def test_params_wait_the_flush_delay_then_go_in_the_background_unless_the_result_is_first(
    mongo_db: Database,
) -> None:
    storage = optuna_storage(mongo_db, flush_delay=30.0, read_interval=0.0)
    study = optuna.create_study(study_name="r", storage=storage)
    short = study.ask()
    short.suggest_float("x", 0, 1)
    storage.flush(wait=False)  # not due for 30 s
    study.tell(short, 1.0)
    documents = mongo_db[JOURNAL].count_documents({})
    study.ask()  # params, result and the next creation: one document
    assert mongo_db[JOURNAL].count_documents({}) == documents + 1
    assert _reader(mongo_db).trials[0].params == short.params
    storage.close()

    storage = optuna_storage(mongo_db, flush_delay=0.05, read_interval=0.0)
    study = optuna.load_study(study_name="r", storage=storage)
    long = study.ask()
    long.suggest_float("x", 0, 1)
    storage.flush(wait=False)
    deadline = time.monotonic() + 30.0
    while not _reader(mongo_db).trials[long.number].params:  # written while it still runs
        assert time.monotonic() < deadline, "the params were never written in the background"
        threading.Event().wait(0.05)
    assert _reader(mongo_db).trials[long.number].state == optuna.trial.TrialState.RUNNING
    study.tell(long, 2.0)
    storage.close()
    assert _reader(mongo_db).trials[long.number].value == 2.0
