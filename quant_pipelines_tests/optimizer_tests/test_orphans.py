"""Orphaned trials: a dead worker's RUNNING trial is failed when a run on its study ends, and a
killed trial's retry keeps its parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.optimizer import run_study
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository, get_study, list_trials

ROOT = Path(__file__).resolve().parents[2]
RUNNING = optuna.trial.TrialState.RUNNING
FAIL = optuna.trial.TrialState.FAIL
DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
LINUX_PROC = Path("/proc/self/ns/pid").exists() and Path("/proc/sys/kernel/random/boot_id").exists()


def _spawn(
    uri: str,
    db: str,
    study: str,
    n_trials: int,
    *,
    delay: float,
    lease: float,
    grace: float,
    trace: Path | None = None,
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "quant_pipelines_tests.optimizer_tests._worker"]
    cmd += ["--uri", uri, "--db", db, "--study", study, "--n-trials", str(n_trials)]
    cmd += ["--delay", str(delay), "--lease", str(lease), "--grace", str(grace)]
    if trace is not None:
        cmd += ["--trace", str(trace)]
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


def _kill_mid_trial(
    proc: subprocess.Popen, db: Database, study: str, *, min_done: int, settle: float = 0.15
) -> None:
    """SIGKILLs the worker once ``min_done`` trials are done and a later one runs, ``settle``
    seconds after it was seen running."""

    def mid_trial() -> bool:
        try:
            trials = _trials(db, study)
        except KeyError:  # the study is not created yet
            return False
        done = sum(t.state in DONE for t in trials)
        return done >= min_done and trials[-1].state == RUNNING

    deadline = time.monotonic() + 60.0
    try:
        while not mid_trial():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)
        time.sleep(settle)  # the trial's params are sampled: it is in its (slow) evaluation
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()


def _assert_mirror_matches_journal(db: Database, study: str) -> dict[int, dict]:
    journal = {t.number: t.state.name for t in _trials(db, study)}
    mirrored = {d["number"]: d for d in list_trials(db, study)}
    assert {n: d["state"] for n, d in mirrored.items()} == journal
    return mirrored


@pytest.mark.slow
def test_killed_workers_trial_is_failed_when_the_budget_is_spent_right_after(
    mongo_uri: str, mongo_db: Database
) -> None:
    # The grace is longer than the second worker's run: its first trial cannot reap the
    # killed one by lease age (only its end of run, or knowing the killed process is gone).
    study, lease, grace = "orphan", 0.3, 6.0
    kw = {"lease": lease, "grace": grace}
    proc = _spawn(mongo_uri, mongo_db.name, study, 50, delay=0.4, **kw)
    _kill_mid_trial(proc, mongo_db, study, min_done=2)
    before = _trials(mongo_db, study)
    (victim,) = [t for t in before if t.state == RUNNING]
    done = sum(t.state in DONE for t in before)

    summary = _finish(_spawn(mongo_uri, mongo_db.name, study, done + 1, delay=0.0, **kw))

    after = {t.number: t for t in _trials(mongo_db, study)}
    assert not [t.number for t in after.values() if t.state == RUNNING]
    assert after[victim.number].state == FAIL
    assert sum(t.state in DONE for t in after.values()) == done + 1
    mirrored = _assert_mirror_matches_journal(mongo_db, study)
    assert mirrored[victim.number]["state"] == "FAIL"
    # Budget reached and nothing runs: completed, in the summary and the study document.
    assert summary["status"] == "completed"
    assert get_study(mongo_db, study)["status"] == "completed"


@pytest.mark.slow
def test_killed_trials_retry_has_the_killed_trials_params(
    mongo_uri: str, mongo_db: Database, tmp_path: Path
) -> None:
    # Long leases: the killed worker never reaches its first lease tick (which would also
    # write the params); the second worker judges the unstamped trial by its start.
    study, trace = "requeued", tmp_path / "params.jsonl"
    proc = _spawn(mongo_uri, mongo_db.name, study, 50, delay=1.0, lease=5.0, grace=6.0, trace=trace)
    # half-way through its 1 s evaluation: its params, deferred, are written in the
    # background once they have waited the storage's flush_delay (0.1 s)
    _kill_mid_trial(proc, mongo_db, study, min_done=1, settle=0.5)
    before = _trials(mongo_db, study)
    (victim,) = [t for t in before if t.state == RUNNING]
    done = sum(t.state in DONE for t in before)
    evaluating = json.loads(trace.read_text().splitlines()[-1])  # what the killed worker ran
    assert victim.params == {k: evaluating[k] for k in ("fast", "slow")}

    summary = _finish(
        _spawn(mongo_uri, mongo_db.name, study, done + 3, delay=0.0, lease=0.3, grace=1.0)
    )

    after = {t.number: t for t in _trials(mongo_db, study)}
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1
    (retry,) = retries
    assert retry.state in DONE
    assert retry.params  # non-empty ...
    assert retry.params == victim.params  # ... and exactly the killed trial's
    assert after[victim.number].state == FAIL
    assert not [t.number for t in after.values() if t.state == RUNNING]
    mirrored = _assert_mirror_matches_journal(mongo_db, study)
    assert mirrored[retry.number]["retry_of"] == victim.number
    assert mirrored[retry.number]["params"] == victim.params
    assert summary["status"] == "completed"


def _silent_trial(db: Database, study: str, *, lease: float, grace: float) -> int:
    """A trial asked by a worker that stamps its lease once and then goes silent (hung, or its
    machine died); returns its number."""
    gone = optuna_storage(db, heartbeat_interval=lease, grace_period=grace)
    trial = optuna.load_study(study_name=study, storage=gone).ask()
    gone.stamp()
    gone.close()  # no more stamps
    return trial.number


def _runner(bars: pd.DataFrame, db: Database, study_name: str, *, lease: float, grace: float):
    """A function running ``n_trials`` of the study in this process, with short leases."""
    repo = StudiesRepository(db)

    def run(n_trials: int):
        storage = optuna_storage(db, heartbeat_interval=lease, grace_period=grace)
        try:
            return run_study(
                bars,
                strategy="sma_crossover",
                study_name=study_name,
                n_folds=2,
                n_trials=n_trials,
                storage=storage,
                recorder=repo,
            )
        finally:
            storage.close()

    return run


def test_silent_workers_trial_is_failed_when_the_run_ends(
    bars: pd.DataFrame, mongo_db: Database
) -> None:
    lease, grace = 0.2, 1.0
    run = _runner(bars, mongo_db, "silent", lease=lease, grace=grace)

    run(2)
    victim = _silent_trial(mongo_db, "silent", lease=lease, grace=grace)
    start = time.monotonic()
    summary = run(3)  # one trial: the budget is spent long before the victim's lease expires

    assert time.monotonic() - start < grace + lease + 10.0
    after = {t.number: t for t in _trials(mongo_db, "silent")}
    assert after[victim].state == FAIL
    assert not [t.number for t in after.values() if t.state == RUNNING]
    mirrored = _assert_mirror_matches_journal(mongo_db, "silent")
    assert mirrored[victim]["state"] == "FAIL"
    assert summary.status == "completed"
    assert get_study(mongo_db, "silent")["status"] == "completed"


def test_a_live_workers_running_trial_keeps_the_study_running(
    bars: pd.DataFrame, mongo_db: Database
) -> None:
    lease, grace = 0.2, 1.0
    run = _runner(bars, mongo_db, "live", lease=lease, grace=grace)

    run(2)
    live = optuna_storage(mongo_db, heartbeat_interval=lease, grace_period=grace)
    study = optuna.load_study(study_name="live", storage=live)
    trial = study.ask()  # its lease is stamped every 0.2 s for as long as it runs
    try:
        summary = run(3)
        assert study.trials[trial.number].state == RUNNING  # not reaped: its worker lives
        assert summary.n_trials == 3
        assert summary.status == "running"  # budget reached, but a trial still runs
        assert get_study(mongo_db, "live")["status"] == "running"
        study.tell(trial, state=FAIL)
    finally:
        live.close()
    assert run(3).status == "completed"  # nothing left to run: a later run completes it
    assert get_study(mongo_db, "live")["status"] == "completed"


@pytest.mark.skipif(not LINUX_PROC, reason="needs /proc (boot id, PID namespace)")
def test_settle_fails_the_trial_of_a_gone_process_of_this_machine_at_once(
    mongo_db: Database,
) -> None:
    gone = optuna_storage(mongo_db, heartbeat_interval=0.2, grace_period=30.0)
    study = optuna.create_study(study_name="gone", storage=gone)
    trial = study.ask()
    gone.stamp()
    gone.close()
    reaper = optuna_storage(mongo_db, heartbeat_interval=0.2, grace_period=30.0)
    sid = reaper.get_study_id_from_name("gone")
    assert reaper.settle(sid, timeout=0) == []  # its holder (this process) lives

    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    leases = mongo_db.optuna_journal_leases
    lease = leases.find_one({"_id": trial._trial_id})
    assert lease is not None and lease["pid"] == os.getpid()
    leases.update_one({"_id": trial._trial_id}, {"$set": {"pid": int(exited.stdout)}})
    other_node = {"$set": {"node": "elsewhere/" + lease["node"]}}
    leases.update_one({"_id": trial._trial_id}, other_node)
    assert reaper.settle(sid, timeout=0) == []  # a process of another machine: wait the lease
    leases.update_one({"_id": trial._trial_id}, {"$set": {"node": lease["node"]}})

    start = time.monotonic()
    assert reaper.settle(sid) == [trial._trial_id]  # gone from this machine: at once
    assert time.monotonic() - start < 5.0
    trials = optuna.load_study(study_name="gone", storage=reaper).trials
    assert trials[trial.number].state == FAIL
    assert [t.system_attrs.get("failed_trial") for t in trials[1:]] == [trial.number]


def test_settle_waits_for_a_live_workers_trial_to_finish(mongo_db: Database) -> None:
    live = optuna_storage(mongo_db, heartbeat_interval=0.2, grace_period=1.0)
    study = optuna.create_study(study_name="wait", storage=live)
    trial = study.ask()
    reaper = optuna_storage(mongo_db, heartbeat_interval=0.2, grace_period=1.0)
    finisher = threading.Timer(1.5, lambda: study.tell(trial, 1.0))
    finisher.start()
    try:
        start = time.monotonic()
        assert reaper.settle(reaper.get_study_id_from_name("wait"), timeout=20.0) == []
        elapsed = time.monotonic() - start
    finally:
        finisher.join()
        live.close()
    assert 1.0 < elapsed < 10.0  # it waited for the trial, not for the timeout
    trials = optuna.load_study(study_name="wait", storage=reaper).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE]
