"""The request lifecycle is Dagster's: the request sensor launches, the run-status sensors end.

A run killed mid-study (its process SIGKILLed, so no line of the asset runs after the kill)
ends its request ``failed`` with the run id once Dagster marks the run failed, never stuck in
``launched``/``running``. Late or repeated run events change nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.defs.optimization.planning import plan_request_runs
from quant_pipelines.defs.optimization.tags import REQUEST_RUN_KEY_TAG, REQUEST_TAG
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository, requests
from quant_pipelines_tests.defs_tests._lifecycle import evaluate_run_sensor

START, END = "2022-01-01", "2023-12-31"
NOW = pd.Timestamp("2024-03-09 15:00", tz="UTC")  # a Saturday: nothing is deferred


def _request(db: Database, *, n_trials: int = 5) -> dict:
    params = {
        "strategy": "sma_crossover",
        "symbols": ["BTCUSD"],
        "start": START,
        "end": END,
        "n_trials": n_trials,
        "objective": "sharpe",
        "sampler": "random",
        "seed": 1,
        "walk_forward": False,
        "urgent": False,
    }
    return requests.create_request(db, params, extra={"asset_classes": ["crypto"]}).document


@dg.op
def _noop() -> None:
    """Stands in for the study: the sensors only read the run's tags and events."""


@dg.job
def _tagged_job() -> None:
    _noop()


def _run(instance: dg.DagsterInstance, run: dg.RunRequest) -> str:
    """A finished run carrying the request's tags; its id."""
    result = _tagged_job.execute_in_process(instance=instance, tags=run.tags)
    assert result.success
    return result.run_id


def test_the_state_machine_allows_only_forward_moves() -> None:
    assert requests.allowed_from("launched") == ("queued", "deferred")
    assert set(requests.allowed_from("failed")) == {"queued", "deferred", "launched", "running"}
    assert requests.allowed_from("deferred") == ("queued", "deferred", "launched", "running")
    for terminal in requests.TERMINAL_STATUSES:
        assert requests.TRANSITIONS[terminal] == ()
    assert "running" not in requests.TRANSITIONS["queued"]  # only a run that started runs


def test_succeeded_then_a_late_failure_event_changes_nothing(
    mongo_db: Database, mongo_resource: MongoResource
) -> None:
    request = _request(mongo_db)
    (run,) = plan_request_runs(mongo_db, now=NOW)
    with dg.instance_for_test() as instance:
        run_id = _run(instance, run)
        evaluate_run_sensor(instance, run_id, mongo_resource)
        done = requests.get_request(mongo_db, request["request_id"])
        assert (done["status"], done["run_id"]) == ("succeeded", run_id)
        assert done["finished_at"] is not None
        instance.report_run_failed(instance.get_run_by_id(run_id), "late")
        skipped = evaluate_run_sensor(instance, run_id, mongo_resource)
    assert isinstance(skipped, dg.SkipReason)
    assert requests.get_request(mongo_db, request["request_id"])["status"] == "succeeded"


def test_a_canceled_run_cancels_its_request(
    mongo_db: Database, mongo_resource: MongoResource
) -> None:
    request = _request(mongo_db)
    (run,) = plan_request_runs(mongo_db, now=NOW)
    with dg.instance_for_test() as instance:
        run_id = _run(instance, run)
        instance.report_run_canceled(instance.get_run_by_id(run_id))
        evaluate_run_sensor(instance, run_id, mongo_resource)
    doc = requests.get_request(mongo_db, request["request_id"])
    assert (doc["status"], doc["run_id"]) == ("canceled", run_id)
    assert plan_request_runs(mongo_db, now=NOW) == []  # terminal: never launched again


def test_an_event_of_a_run_the_request_no_longer_holds_changes_nothing(
    mongo_db: Database, mongo_resource: MongoResource
) -> None:
    request = _request(mongo_db)
    (run,) = plan_request_runs(mongo_db, now=NOW)
    stale = dg.RunRequest(
        run_key="other",
        tags={**run.tags, REQUEST_RUN_KEY_TAG: f"{request['request_id']}:resume-7"},
    )
    with dg.instance_for_test() as instance:
        stale_id = _run(instance, stale)
        assert isinstance(evaluate_run_sensor(instance, stale_id, mongo_resource), dg.SkipReason)
    doc = requests.get_request(mongo_db, request["request_id"])
    assert doc["status"] == "launched" and doc["run_id"] is None


def test_a_failed_run_dagster_retries_leaves_the_request_to_the_retry(
    mongo_db: Database, mongo_resource: MongoResource
) -> None:
    """dagster.yaml retries a failed run once: the request waits for the retry's outcome."""
    request = _request(mongo_db)
    (run,) = plan_request_runs(mongo_db, now=NOW)
    with dg.instance_for_test() as instance:
        first = _run(instance, run)
        evaluate_run_sensor(instance, first, mongo_resource, dg.DagsterEventType.RUN_START)
        instance.report_run_failed(instance.get_run_by_id(first), "worker lost")
        instance.add_run_tags(first, {"dagster/will_retry": "true"})
        assert isinstance(evaluate_run_sensor(instance, first, mongo_resource), dg.SkipReason)
        doc = requests.get_request(mongo_db, request["request_id"])
        assert (doc["status"], doc["run_id"]) == ("running", first)
        retry = _run(
            instance,
            dg.RunRequest(run_key="retry", tags={**run.tags, "dagster/parent_run_id": first}),
        )
        evaluate_run_sensor(instance, retry, mongo_resource)
    doc = requests.get_request(mongo_db, request["request_id"])
    assert (doc["status"], doc["run_id"]) == ("succeeded", retry)


def test_a_run_that_never_reaches_the_study_fails_its_request_with_the_error(
    mongo_db: Database, mongo_resource: MongoResource, small_universe: Path
) -> None:
    """No bars: the asset raises before any study; the request fails with the run id and why."""
    from quant_pipelines.defs.optimization.assets import optimization_study
    from quant_pipelines.defs.resources import UniverseResource

    request = _request(mongo_db)
    (run,) = plan_request_runs(mongo_db, now=NOW)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [optimization_study],
            instance=instance,
            run_config=run.run_config,
            partition_key=run.partition_key,
            tags=run.tags,
            resources={
                "mongo": mongo_resource,
                "universe": UniverseResource(path=str(small_universe)),
            },
            raise_on_error=False,
        )
        assert not result.success
        evaluate_run_sensor(instance, result.run_id, mongo_resource)
    doc = requests.get_request(mongo_db, request["request_id"])
    assert (doc["status"], doc["run_id"]) == ("failed", result.run_id)
    assert "no bars in MongoDB" in doc["error"]


_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import dagster as dg
    from quant_pipelines.defs.optimization.assets import optimization_study
    from quant_pipelines.defs.resources import MongoResource, UniverseResource

    run = json.loads(sys.argv[1])
    mongo = MongoResource(uri=os.environ["T_MONGO_URI"], database=os.environ["T_MONGO_DB"])
    with dg.DagsterInstance.get() as instance:
        dg.materialize(
            [optimization_study],
            instance=instance,
            run_config=run["run_config"],
            partition_key=run["partition_key"],
            tags=run["tags"],
            resources={"mongo": mongo, "universe": UniverseResource(path=sys.argv[2])},
        )
    """
)


@pytest.mark.slow
def test_a_run_killed_mid_study_ends_its_request_failed_with_the_run_id(
    mongo_db: Database,
    mongo_uri: str,
    db_name: str,
    mongo_resource: MongoResource,
    small_universe: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    bars = SyntheticSource(seed=5).bars("BTCUSD", START, END)
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")
    request = _request(mongo_db, n_trials=100_000)  # far more than the test waits for
    (run,) = plan_request_runs(mongo_db, now=NOW)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = dict(os.environ, T_MONGO_URI=mongo_uri, T_MONGO_DB=db_name)
    payload = json.dumps(
        {"run_config": run.run_config, "partition_key": str(run.partition_key), "tags": run.tags}
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, payload, str(small_universe)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        study = {"study_name": request["study_name"]}
        while mongo_db.trials.count_documents(study) < 3:  # mid-study: trials are being done
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the study never started"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.get_run_records(
            dg.RunsFilter(tags={REQUEST_TAG: request["request_id"]})
        )
        dead = record.dagster_run
        assert dead.status == dg.DagsterRunStatus.STARTED  # nobody ended it
        # Run monitoring marks a run whose worker died failed (dagster.yaml: run_monitoring).
        instance.report_run_failed(dead, "run worker process died (SIGKILL)")
        stuck = requests.get_request(mongo_db, request["request_id"])
        assert stuck["status"] == "launched"  # the asset body never wrote a status
        evaluate_run_sensor(instance, dead.run_id, mongo_resource)
    doc = requests.get_request(mongo_db, request["request_id"])
    assert (doc["status"], doc["run_id"]) == ("failed", dead.run_id)
    assert "SIGKILL" in doc["error"]
    assert doc["history"][-1]["run_id"] == dead.run_id
    # The study's own progress stayed where the kill left it, in the one vocabulary.
    progress = mongo_db.studies.find_one({"study_name": request["study_name"]})["progress"]
    assert 0 < progress["done"] < progress["total"] == 100_000
