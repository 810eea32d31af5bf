from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from pymongo.database import Database

from quant_pipelines.alerts import enqueue_alerts


def _cli(*args: str, uri: str, db: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {"MONGODB_URI": uri, "MONGODB_DB": db}
    return subprocess.run(
        [sys.executable, "-m", "quant_pipelines.cli", "alerts", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_list_ack_resolve_and_refusals(mongo_db: Database, mongo_uri: str) -> None:
    ts = dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC)
    anomaly = {
        "symbol": "AAPL",
        "ts": ts,
        "detector": "rules",
        "rule": "non_positive_price",
        "severity": "critical",
        "score": 1.0,
        "threshold": 0.0,
        "status": "open",
        "created_at": ts,
    }
    anomaly_id = str(mongo_db.anomalies.insert_one(anomaly).inserted_id)
    anomaly["_id"] = anomaly_id
    enqueue_alerts(mongo_db, [anomaly], channels=("webhook",))

    listed = _cli("list", uri=mongo_uri, db=mongo_db.name)
    assert listed.returncode == 0, listed.stderr
    assert anomaly_id in listed.stdout and "pending" in listed.stdout and "AAPL" in listed.stdout

    acked = _cli(
        "ack", anomaly_id, "--note", "looking", "--actor", "ana", uri=mongo_uri, db=mongo_db.name
    )
    assert acked.returncode == 0 and "acknowledged" in acked.stdout
    resolved = _cli("resolve", anomaly_id, uri=mongo_uri, db=mongo_db.name)
    assert resolved.returncode == 0 and "resolved" in resolved.stdout
    doc = mongo_db.anomalies.find_one({})
    assert doc["status"] == "resolved" and doc["acknowledged_at"] <= doc["resolved_at"]
    assert doc["history"][0]["note"] == "looking"

    refused = _cli("false-positive", anomaly_id, uri=mongo_uri, db=mongo_db.name)
    assert refused.returncode == 3 and "error" in refused.stderr
    missing = _cli("ack", "ffffffffffffffffffffffff", uri=mongo_uri, db=mongo_db.name)
    assert missing.returncode == 2
    no_id = _cli("ack", uri=mongo_uri, db=mongo_db.name)
    assert no_id.returncode == 2 and "needs an anomaly id" in no_id.stderr
