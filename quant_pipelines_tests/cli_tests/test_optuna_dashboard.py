from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import optuna
import pytest
from pymongo.database import Database

from quant_pipelines.storage import optuna_storage
from quant_pipelines.storage.embedded import free_port

pytestmark = pytest.mark.slow


def test_dashboard_serves_the_mongodb_studies_on_loopback(
    mongo_db: Database, mongo_uri: str, tmp_path
) -> None:
    study = optuna.create_study(study_name="dash-study", storage=optuna_storage(mongo_db))
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)

    port = free_port()
    env = dict(os.environ) | {
        "MONGODB_URI": mongo_uri,
        "MONGODB_DB": mongo_db.name,
        "DAGSTER_HOME": str(tmp_path),
    }
    env.pop("QP_DASHBOARD_TOKEN", None)  # the token file is created on first start
    proc = subprocess.Popen(
        [sys.executable, "-m", "quant_pipelines.cli", "optuna-dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        token_file = tmp_path / "optuna_dashboard_token"
        while time.monotonic() < deadline:
            try:
                auth = ("viewer", token_file.read_text().strip()) if token_file.exists() else None
                response = httpx.get(f"http://127.0.0.1:{port}/api/studies", auth=auth, timeout=2)
                if response.status_code == 200:
                    body = response.json()
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        assert body is not None, "optuna-dashboard did not answer on 127.0.0.1"
        names = [s["study_name"] for s in body["study_summaries"]]
        assert names == ["dash-study"]
        study_id = body["study_summaries"][0]["study_id"]
        detail = httpx.get(
            f"http://127.0.0.1:{port}/api/studies/{study_id}", auth=auth, timeout=5
        ).json()
        assert len(detail["trials"]) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=20)
