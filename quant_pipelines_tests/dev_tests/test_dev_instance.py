"""A request posted to the real API is run by a real Dagster dev instance, with no clicks.

``dagster dev`` (webserver and daemon) on loopback with a temporary ``DAGSTER_HOME`` (the
project's ``dagster.yaml``), pointed at the test MongoDB through ``MONGODB_URI``/``MONGODB_DB``;
the API served in a thread. The request sensor and the run-status sensors run by default: the
request goes queued → launched → (running) → succeeded by itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest
from pymongo.database import Database

from quant_pipelines.api import serve
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository, requests
from quant_pipelines.storage.api_keys import ADMIN, create_key
from quant_pipelines.storage.embedded import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
N_TRIALS = 3
TIMEOUT_S = 300


def _wait_until_up(url: str, deadline: float) -> None:
    while True:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} never came up"
        time.sleep(0.5)


def test_a_posted_request_runs_on_a_dev_instance_and_succeeds_with_no_clicks(
    mongo_env: Database, tmp_path: Path
) -> None:
    bars = SyntheticSource(seed=3).bars("AAPL", "2022-01-01", "2023-06-30")
    BarsRepository(mongo_env).upsert(bars, symbol="AAPL", source="test", batch_id="t")
    key, _ = create_key(mongo_env, "dev-test", [ADMIN])
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home)
    ui_port, api_port = free_port(), free_port()
    dagster = Path(sys.executable).with_name("dagster")
    log = (tmp_path / "dagster_dev.log").open("wb")
    command = [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(ui_port)]
    dev = subprocess.Popen(
        [*command, "-m", "quant_pipelines.definitions"],
        cwd=ROOT,
        env=dict(os.environ, DAGSTER_HOME=str(home)),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: webserver, daemon, code server, runs
    )
    stop = threading.Event()
    api = threading.Thread(
        target=serve,
        kwargs={"host": "127.0.0.1", "port": api_port, "log_level": "warning", "stop": stop},
        daemon=True,
    )
    api.start()
    started = time.monotonic()
    deadline = started + TIMEOUT_S
    try:
        base = f"http://127.0.0.1:{api_port}"
        _wait_until_up(f"{base}/healthz", deadline)
        body = {
            "strategy": "sma_crossover",
            "symbols": ["AAPL"],
            "start": "2022-01-01",
            "end": "2023-06-30",
            "n_trials": N_TRIALS,
            "objective": "sharpe",
            "sampler": "random",
            "seed": 1,
            "walk_forward": False,
            "urgent": True,  # whatever the clock's market hours
        }
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10.0) as http:
            accepted = http.post("/backtests/optimize", json=body)
            assert accepted.status_code == 202, accepted.text
            request_id = accepted.json()["request_id"]
            _wait_until_up(f"http://127.0.0.1:{ui_port}/server_info", deadline)
            seen = []
            while True:
                doc = requests.get_request(mongo_env, request_id)
                if not seen or seen[-1] != doc["status"]:
                    seen.append(doc["status"])
                if doc["status"] in requests.TERMINAL_STATUSES:
                    break
                assert dev.poll() is None, "dagster dev exited"
                assert time.monotonic() < deadline, f"request stuck: {seen}"
                time.sleep(1.0)
            status = http.get(accepted.json()["status_url"]).json()
    finally:
        stop.set()
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(timeout=30)
        log.close()
        api.join(timeout=10)
    tail = (tmp_path / "dagster_dev.log").read_bytes()[-3000:].decode(errors="replace")
    assert doc["status"] == "succeeded", (doc.get("error"), seen, tail)
    # the daemon's sensor may launch it before the first poll: the history holds every state
    path = [h["status"] for h in doc["history"]]
    assert path[0] == "queued" and path.index("launched") < path.index("succeeded"), path
    assert status["status"] == "succeeded" and status["run_id"] == doc["run_id"]
    assert status["progress"]["done"] == N_TRIALS == status["progress"]["total"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(doc["run_id"])
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["quant_pipelines/request_id"] == request_id
    print(f"request succeeded {time.monotonic() - started:.0f} s after the dev instance started")
