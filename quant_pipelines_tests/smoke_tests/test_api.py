"""API smoke test: POST an optimization request, let the sensor launch it, poll to succeeded."""

from __future__ import annotations

import threading
import time

import dagster as dg
import httpx
import pytest

from quant_pipelines.api import serve
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.storage.api_keys import OPTIMIZE_WRITE, READ, create_key
from quant_pipelines.storage.embedded import free_port
from quant_pipelines_tests.smoke_tests.conftest import BARS_END, BARS_START, wait_for_http

pytestmark = pytest.mark.slow

N_TRIALS = 5


def test_posted_request_is_launched_by_the_sensor_and_succeeds(
    btc_bars, instance: dg.DagsterInstance, mongo_uri: str, db_name: str
) -> None:
    from quant_pipelines.definitions import build_definitions

    defs = build_definitions()  # after mongo_env / DAGSTER_HOME are set
    key, _ = create_key(btc_bars, "smoke-test", [READ, OPTIMIZE_WRITE])
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(
        target=serve,
        kwargs={"host": "127.0.0.1", "port": port, "log_level": "warning", "stop": stop},
        daemon=True,
    )
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", timeout_s=30)
        body = {
            "strategy": "sma_crossover",
            "symbols": ["BTCUSD"],
            "start": BARS_START,
            "end": BARS_END,
            "n_trials": N_TRIALS,
            "objective": "sharpe",
            "sampler": "tpe",
            "seed": 1,
            "urgent": True,
        }
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, timeout=10.0, headers=auth) as http:
            accepted = http.post("/backtests/optimize", json=body)
            assert accepted.status_code == 202, accepted.text
            request_id = accepted.json()["request_id"]
            status_url = accepted.json()["status_url"]
            assert http.get(status_url).json()["status"] == "queued"

            # The sensor plans exactly one run for the request; run it as the daemon would.
            sensor = defs.resolve_sensor_def("optimization_request_sensor")
            mongo = MongoResource(uri=mongo_uri, database=db_name)
            with dg.build_sensor_context(instance=instance, resources={"mongo": mongo}) as ctx:
                run_requests = sensor(ctx)
            assert [rr.run_key for rr in run_requests] == [request_id]
            job = defs.resolve_job_def("optimize_strategy_job")
            for rr in run_requests:
                result = job.execute_in_process(
                    run_config=rr.run_config,
                    partition_key=rr.partition_key,
                    tags=rr.tags,
                    instance=instance,
                )
                assert result.success

            deadline = time.monotonic() + 30
            while (status := http.get(status_url).json())["status"] != "succeeded":
                assert status["status"] not in {"failed", "cancelled"}, status
                assert time.monotonic() < deadline, status
                time.sleep(0.5)
        assert status["request_id"] == request_id
        assert status["run_id"] == result.run_id
        assert status["progress"]["done"] == N_TRIALS
        assert status["top_trials"]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
