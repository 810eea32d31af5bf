"""serve(): uvicorn on a free loopback port, in a thread, reached over real HTTP with httpx."""

from __future__ import annotations

import threading
import time

import httpx
from pymongo.database import Database

from quant_pipelines.api import serve
from quant_pipelines.storage import ensure_indexes
from quant_pipelines.storage.api_keys import ADMIN, create_key
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS
from quant_pipelines.storage.embedded import free_port
from quant_pipelines_tests.api_tests.conftest import bearer


def _wait_until_up(base: str, timeout_s: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(f"{base}/healthz", timeout=2.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_serve_over_real_http(mongo_env: Database, valid_body):
    """The environment (MONGODB_URI, MONGODB_DB) is read through load_settings()."""
    ensure_indexes(mongo_env)
    key, _ = create_key(mongo_env, "serve-test", [ADMIN])
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
        health = _wait_until_up(base)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        headers = {"Idempotency-Key": "over-http"}
        assert httpx.get(f"{base}/alerts", timeout=2.0).status_code == 401
        with httpx.Client(base_url=base, timeout=10.0, headers=bearer(key)) as http:
            first = http.post("/backtests/optimize", json=valid_body, headers=headers)
            again = http.post("/backtests/optimize", json=valid_body, headers=headers)
            assert first.status_code == again.status_code == 202
            assert first.json() == again.json()
            status = http.get(first.json()["status_url"])
            assert status.json()["status"] == "queued"
            big = http.post("/backtests/optimize", content=b"{" + b" " * 70_000 + b"}")
            assert big.status_code == 413
            assert http.get("/docs").status_code == 200
        assert mongo_env[OPTIMIZATION_REQUESTS].count_documents({}) == 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
