"""Faults: a worker killed mid-study, two workers on one study, MongoDB restarted mid-study."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from pymongo.database import Database

from quant_pipelines.optimizer import run_study
from quant_pipelines.storage import EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository, list_trials
from quant_pipelines_tests.optimizer_tests._worker import small_bars

ROOT = Path(__file__).resolve().parents[2]
DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
LEASE, GRACE = 0.5, 1.5


def _worker(uri: str, db: str, study: str, n_trials: int, delay: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "quant_pipelines_tests.optimizer_tests._worker"]
    cmd += ["--uri", uri, "--db", db, "--study", study, "--n-trials", str(n_trials)]
    cmd += ["--delay", str(delay), "--lease", str(LEASE), "--grace", str(GRACE)]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen, timeout: float = 150.0) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _trials(db: Database, study: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna_storage(db, heartbeat_interval=None)  # a reader: no leases, no reaping
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def _assert_journal_gap_free(db: Database) -> None:
    numbers = [d["log_number"] for d in db.optuna_journal.find({}, {"log_number": 1})]
    assert sorted(numbers) == list(range(len(numbers)))


def _wait_for(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_worker_killed_mid_study_resumes_by_name(mongo_uri: str, mongo_db: Database) -> None:
    study, n = "killed", 12
    proc = _worker(mongo_uri, mongo_db.name, study, n, delay=0.3)

    def mid_trial() -> bool:
        try:
            trials = _trials(mongo_db, study)
        except KeyError:  # the study is not created yet
            return False
        done = [t for t in trials if t.state in DONE]
        return len(done) >= 3 and trials[-1].state == optuna.trial.TrialState.RUNNING

    try:
        _wait_for(mid_trial)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    killed_at = dt.datetime.now()
    before = {t.number: t for t in _trials(mongo_db, study)}
    killed = [t for t in before.values() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(killed) == 1
    victim = killed[0]

    summary = _finish(_worker(mongo_uri, mongo_db.name, study, n, delay=0.3))

    after = {t.number: t for t in _trials(mongo_db, study)}
    for number, t in before.items():  # no completed trial lost or changed
        if t.state in DONE:
            assert after[number].state == t.state
            assert after[number].params == t.params
            assert after[number].values == t.values
    reaped = after[victim.number]
    assert reaped.state == optuna.trial.TrialState.FAIL
    # failed as soon as the second worker asked for its first trial (the lease's holder, a
    # process of this machine, is gone), however long that worker took to start
    started = [t.datetime_start for n, t in after.items() if n not in before and t.datetime_start]
    assert killed_at < reaped.datetime_complete <= min(started)
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1
    if victim.params:  # deferred params reach the journal at the first lease tick
        assert retries[0].params == victim.params
    assert retries[0].state in DONE
    assert sum(t.state in DONE for t in after.values()) == n == summary["n_trials"]
    assert sorted(after) == list(range(len(after)))
    _assert_journal_gap_free(mongo_db)
    mirrored = {d["number"]: d for d in list_trials(mongo_db, study)}
    assert set(mirrored) == set(after)
    assert mirrored[victim.number]["state"] == "FAIL"
    assert mirrored[retries[0].number]["retry_of"] == victim.number


@pytest.mark.slow
def test_two_workers_share_one_study(mongo_uri: str, mongo_db: Database) -> None:
    study, n = "shared", 20
    procs = [_worker(mongo_uri, mongo_db.name, study, n, delay=0.25) for _ in range(2)]
    summaries = [_finish(p) for p in procs]
    trials = _trials(mongo_db, study)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # unique and dense
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == len(trials)
    assert len(finished) == sum(s["trials_run"] for s in summaries)
    assert all(s["trials_run"] > 0 for s in summaries)  # both really worked
    done = sum(t.state in DONE for t in trials)
    assert n <= done <= n + 2  # the budget is shared; each of the 2 workers may finish one more
    _assert_journal_gap_free(mongo_db)
    assert {d["number"] for d in list_trials(mongo_db, study)} == set(numbers)


def _restart_after(server: EmbeddedMongo, downtime: float) -> threading.Thread:
    server.stop()

    def start() -> None:
        time.sleep(downtime)
        server.start()

    thread = threading.Thread(target=start)
    thread.start()
    return thread


@pytest.fixture
def private_mongo(tmp_path: Path):
    """A MongoDB of the test's own, which it may stop and start."""
    server = EmbeddedMongo(tmp_path / "mongo", port=free_port())
    server.start()
    client = make_client(server.uri, server_selection_timeout_ms=2_000)
    db = client["restart"]
    ensure_indexes(db)
    yield server, db
    client.close()
    server.stop()


@pytest.mark.slow
def test_mongodb_restart_mid_study_carries_on(private_mongo) -> None:
    server, db = private_mongo
    restarts: list[threading.Thread] = []

    def on_progress(progress: dict) -> None:
        if progress["done"] == 5 and not restarts:
            restarts.append(_restart_after(server, downtime=1.5))

    start = time.monotonic()
    summary = run_study(
        small_bars(),
        strategy="sma_crossover",
        study_name="restart",
        n_trials=20,
        storage=optuna_storage(db, heartbeat_interval=0.5, retry_timeout=30.0),
        recorder=StudiesRepository(db),
        on_progress=on_progress,
    )
    restarts[0].join()
    assert time.monotonic() - start > 1.5  # the study really waited for the server
    assert summary.status == "completed"
    trials = _trials(db, "restart")
    assert sum(t.state in DONE for t in trials) == 20
    assert all(t.state.is_finished() for t in trials)
    assert [t.number for t in trials] == list(range(len(trials)))
    _assert_journal_gap_free(db)
    assert len(list_trials(db, "restart")) == len(trials)
    assert db.studies.find_one({"study_name": "restart"})["status"] == "completed"


@pytest.mark.slow
def test_mongodb_down_too_long_fails_cleanly_then_resumes(private_mongo) -> None:
    server, db = private_mongo
    restarts: list[threading.Thread] = []

    def on_progress(progress: dict) -> None:
        if progress["done"] == 5 and not restarts:
            restarts.append(_restart_after(server, downtime=4.0))

    kwargs = {
        "strategy": "sma_crossover",
        "study_name": "outage",
        "n_trials": 15,
        "recorder": StudiesRepository(db),
    }
    # A client that gives up after 1 s (the project's default rides out 60 s outages).
    impatient = make_client(server.uri, server_selection_timeout_ms=1_000, timeout_ms=None)
    first = optuna_storage(
        impatient[db.name], heartbeat_interval=0.5, grace_period=1.5, retry_timeout=1.0
    )
    with pytest.raises(Exception, match=r"(?i)timed out|connect|refused|reset"):
        run_study(small_bars(), storage=first, on_progress=on_progress, **kwargs)
    first.close()  # the worker is gone: its lease thread stops
    impatient.close()
    restarts[0].join()
    before = [t for t in _trials(db, "outage") if t.state in DONE]
    assert len(before) >= 5
    time.sleep(2.0)  # let the lease of the trial cut short expire
    summary = run_study(small_bars(), storage=optuna_storage(db, heartbeat_interval=0.5), **kwargs)
    assert summary.status == "completed"
    after = {t.number: t for t in _trials(db, "outage")}
    for t in before:  # nothing done was lost
        assert after[t.number].values == t.values
    assert sum(t.state in DONE for t in after.values()) == 15
    _assert_journal_gap_free(db)
