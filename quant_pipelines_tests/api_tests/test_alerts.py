"""The analysts' workflow over HTTP: GET /alerts, POST /alerts/{id}/ack|resolve|false-positive."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import ObjectId
from fastapi.testclient import TestClient
from pymongo.database import Database

from quant_pipelines.storage.collections import ANOMALIES
from quant_pipelines_tests.api_tests.conftest import ADMIN_KEY_NAME, READ_KEY_NAME

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


@pytest.fixture
def anomaly_ids(mongo_db: Database) -> list[str]:
    """Four anomalies: critical AAPL (open), warning MSFT (no status), critical BTCUSD
    (acknowledged), info SPY (resolved); ids in that order."""
    docs = [
        {"symbol": "AAPL", "severity": "critical", "status": "open"},
        {"symbol": "MSFT", "severity": "warning"},
        {"symbol": "BTCUSD", "severity": "critical", "status": "acknowledged"},
        {"symbol": "SPY", "severity": "info", "status": "resolved"},
    ]
    for i, doc in enumerate(docs):
        ts = T0 + dt.timedelta(days=i)
        doc.update(ts=ts, detector="iforest", score=0.9, threshold=0.7, created_at=ts)
    result = mongo_db[ANOMALIES].insert_many(docs)
    return [str(i) for i in result.inserted_ids]


def test_list_filters_and_limit(client: TestClient, anomaly_ids):
    every = client.get("/alerts").json()
    assert every["count"] == 4
    assert [a["symbol"] for a in every["alerts"]] == ["SPY", "BTCUSD", "MSFT", "AAPL"]
    assert every["alerts"][2]["status"] == "open"
    assert every["alerts"][0]["id"] == anomaly_ids[3]
    open_ = client.get("/alerts", params={"status": "open"}).json()["alerts"]
    assert {a["symbol"] for a in open_} == {"AAPL", "MSFT"}
    critical = client.get("/alerts", params={"severity": "critical"}).json()["alerts"]
    assert {a["symbol"] for a in critical} == {"AAPL", "BTCUSD"}
    both = client.get("/alerts", params={"severity": "critical", "status": "open"}).json()
    assert [a["symbol"] for a in both["alerts"]] == ["AAPL"]
    assert client.get("/alerts", params={"limit": 1}).json()["count"] == 1


@pytest.mark.parametrize(
    "params",
    [{"status": "closed"}, {"severity": "fatal"}, {"limit": 0}, {"limit": 501}, {"symbol": "$ne"}],
)
def test_list_rejects_bad_filters(client: TestClient, anomaly_ids, params):
    assert client.get("/alerts", params=params).status_code == 422


def test_ack_then_resolve(client: TestClient, mongo_db: Database, anomaly_ids):
    aapl = anomaly_ids[0]
    acked = client.post(f"/alerts/{aapl}/ack", json={"note": "looking", "actor": "jane"})
    assert acked.status_code == 200
    body = acked.json()
    assert body["id"] == aapl
    assert body["status"] == "acknowledged"
    assert dt.datetime.fromisoformat(body["acknowledged_at"]) > T0
    assert body["history"][-1]["actor"] == ADMIN_KEY_NAME  # the key's name, not the body's
    assert body["history"][-1]["note"] == "looking"
    resolved = client.post(f"/alerts/{aapl}/resolve")
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["status"] == "resolved"
    assert body["closed_at"] == body["resolved_at"]
    assert body["time_to_resolution_s"] > 0
    stored = mongo_db[ANOMALIES].find_one({"_id": ObjectId(aapl)})
    assert stored["status"] == "resolved"
    assert [h["to"] for h in stored["history"]] == ["acknowledged", "resolved"]


def test_false_positive_from_open(client: TestClient, anomaly_ids):
    answer = client.post(f"/alerts/{anomaly_ids[1]}/false-positive", json={})
    assert answer.status_code == 200
    assert answer.json()["status"] == "false_positive"
    assert answer.json()["false_positive_at"] is not None


def test_repeating_an_action_is_a_no_op(client: TestClient, anomaly_ids):
    btc = anomaly_ids[2]
    answer = client.post(f"/alerts/{btc}/ack")
    assert answer.status_code == 200
    assert answer.json()["status"] == "acknowledged"


@pytest.mark.parametrize("action", ["ack", "false-positive"])
def test_invalid_transition_is_409(client: TestClient, mongo_db: Database, anomaly_ids, action):
    spy = anomaly_ids[3]
    answer = client.post(f"/alerts/{spy}/{action}")
    assert answer.status_code == 409
    assert "resolved" in answer.json()["detail"]
    assert mongo_db[ANOMALIES].find_one({"_id": ObjectId(spy)})["status"] == "resolved"


@pytest.mark.parametrize("alert_id", ["65a1b2c3d4e5f6a7b8c9d0e1", "no-such-alert"])
def test_unknown_alert_is_404(client: TestClient, anomaly_ids, alert_id):
    assert client.post(f"/alerts/{alert_id}/resolve").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"note": "x", "priority": 1},
        {"actor": {"$ne": ""}},
        {"actor": "$where"},
        {"note": "$set"},
        {"note": 5},
        {"note": "n" * 2001},
        ["note"],
    ],
)
def test_bad_action_bodies_change_nothing(client: TestClient, mongo_db, anomaly_ids, body):
    aapl = anomaly_ids[0]
    assert client.post(f"/alerts/{aapl}/ack", json=body).status_code == 422
    assert mongo_db[ANOMALIES].find_one({"_id": ObjectId(aapl)})["status"] == "open"


@pytest.mark.parametrize("action", ["ack", "resolve", "false-positive"])
def test_transitions_need_the_alerts_write_scope(
    read_client: TestClient, anon_client: TestClient, mongo_db: Database, anomaly_ids, action
):
    aapl = anomaly_ids[0]
    assert read_client.get("/alerts").status_code == 200  # read is enough to list
    forbidden = read_client.post(f"/alerts/{aapl}/{action}", json={"actor": READ_KEY_NAME})
    assert forbidden.status_code == 403
    assert "alerts:write" in forbidden.json()["detail"]
    anonymous = anon_client.post(f"/alerts/{aapl}/{action}")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anon_client.get("/alerts").status_code == 401
    stored = mongo_db[ANOMALIES].find_one({"_id": ObjectId(aapl)})
    assert stored["status"] == "open"
    assert "history" not in stored


def test_the_severity_filter_accepts_exactly_the_sentinels_severities() -> None:
    from typing import get_args

    from quant_pipelines.api._alerts import Severity
    from quant_pipelines.quality import SEVERITIES

    assert get_args(Severity) == SEVERITIES
