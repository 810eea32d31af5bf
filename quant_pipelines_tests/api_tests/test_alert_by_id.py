"""GET /alerts/{id}: one anomaly, shaped like the list's items, behind the read scope."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pymongo.database import Database

from quant_pipelines.storage.api_keys import ALERTS_WRITE, OPTIMIZE_WRITE, create_key
from quant_pipelines.storage.collections import ANOMALIES
from quant_pipelines_tests.api_tests.conftest import ADMIN_KEY_NAME, bearer

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
#: A string ``_id`` (not an ObjectId), as some writers use.
STRING_ID = "rules:ETHUSD:2024-03-04"


@pytest.fixture
def anomaly_ids(mongo_db: Database) -> list[str]:
    """Four anomalies: AAPL (open, with nested fields), MSFT (no status), BTCUSD
    (acknowledged, with history), and ETHUSD under a string id; ids in that order."""
    docs: list[dict[str, Any]] = [
        {
            "symbol": "AAPL",
            "severity": "critical",
            "status": "open",
            "rules": ["price_jump", "volume_spike"],
            "iforest": 0.91,
            "prophet": float("nan"),  # a missing Prophet score is stored as NaN
        },
        {"symbol": "MSFT", "severity": "warning"},
        {
            "symbol": "BTCUSD",
            "severity": "critical",
            "status": "acknowledged",
            "history": [{"action": "ack", "from": "open", "to": "acknowledged", "at": T0}],
        },
        {"_id": STRING_ID, "symbol": "ETHUSD", "severity": "info", "status": "resolved"},
    ]
    for i, doc in enumerate(docs):
        ts = T0 + dt.timedelta(days=i)
        doc.update(ts=ts, detector="iforest", score=0.9, threshold=0.7, created_at=ts)
    result = mongo_db[ANOMALIES].insert_many(docs)
    return [str(i) for i in result.inserted_ids]


def test_each_anomaly_equals_its_list_item(client: TestClient, anomaly_ids):
    listed = {a["id"]: a for a in client.get("/alerts").json()["alerts"]}
    assert set(listed) == set(anomaly_ids)
    for alert_id in anomaly_ids:
        answer = client.get(f"/alerts/{alert_id}")
        assert answer.status_code == 200, alert_id
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == listed[alert_id]


def test_the_document_is_plain_json(client: TestClient, anomaly_ids):
    aapl = client.get(f"/alerts/{anomaly_ids[0]}").json()
    assert aapl["id"] == anomaly_ids[0] and "_id" not in aapl
    assert (aapl["symbol"], aapl["severity"], aapl["status"]) == ("AAPL", "critical", "open")
    assert dt.datetime.fromisoformat(aapl["ts"]) == T0
    assert aapl["rules"] == ["price_jump", "volume_spike"]
    assert aapl["prophet"] is None  # NaN is not JSON
    assert client.get(f"/alerts/{anomaly_ids[1]}").json()["status"] == "open"  # no status stored
    btc = client.get(f"/alerts/{anomaly_ids[2]}").json()
    assert btc["history"][0]["to"] == "acknowledged"
    assert dt.datetime.fromisoformat(btc["history"][0]["at"]) == T0
    eth = client.get(f"/alerts/{quote(STRING_ID, safe='')}").json()
    assert (eth["id"], eth["symbol"], eth["status"]) == (STRING_ID, "ETHUSD", "resolved")


def test_a_transition_shows_in_the_next_get(client: TestClient, anomaly_ids):
    msft = anomaly_ids[1]
    acted = client.post(f"/alerts/{msft}/false-positive", json={"note": "index rebalance"})
    assert acted.status_code == 200
    fetched = client.get(f"/alerts/{msft}").json()
    assert fetched == acted.json()
    assert fetched["status"] == "false_positive"
    assert fetched["history"][-1]["actor"] == ADMIN_KEY_NAME
    assert fetched["history"][-1]["note"] == "index rebalance"


@pytest.mark.parametrize(
    "alert_id",
    [
        "65a1b2c3d4e5f6a7b8c9d0e1",  # a well-formed ObjectId that names nothing
        "no-such-alert",
        "rules:ETHUSD:2024-03-05",
        "65A1B2C3D4E5F6A7B8C9D0E",  # 23 hex digits
        "$ne",
        "bad id!",
        '{"$gt": ""}',
        ".hidden",
        "é",
        "x" * 65,
        "x" * 5000,
    ],
    ids=[
        "unknown-objectid",
        "unknown-string",
        "unknown-string-id",
        "23-hex",
        "operator",
        "space-and-bang",
        "json-operator",
        "leading-dot",
        "non-ascii",
        "65-chars",
        "5000-chars",
    ],
)
def test_unknown_or_malformed_id_is_a_json_404(client: TestClient, anomaly_ids, alert_id):
    answer = client.get(f"/alerts/{quote(alert_id, safe='')}")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    detail = answer.json()["detail"]
    assert detail.startswith("no alert with id ")
    assert repr(alert_id[:64]) in detail
    assert len(detail) < 120  # a long id is cut, not echoed whole


def test_reading_needs_the_read_scope(
    read_client: TestClient, anon_client: TestClient, mongo_db: Database, anomaly_ids
):
    aapl = anomaly_ids[0]
    assert read_client.get(f"/alerts/{aapl}").json()["symbol"] == "AAPL"
    for alert_id in (aapl, "65a1b2c3d4e5f6a7b8c9d0e1"):  # 401 first: ids are not probed
        anonymous = anon_client.get(f"/alerts/{alert_id}")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    writer, _ = create_key(mongo_db, "writer-only", [ALERTS_WRITE, OPTIMIZE_WRITE])
    forbidden = anon_client.get(f"/alerts/{aapl}", headers=bearer(writer))
    assert forbidden.status_code == 403
    assert "'read'" in forbidden.json()["detail"]
    unknown_key = anon_client.get(f"/alerts/{aapl}", headers=bearer("qp_" + "x" * 43))
    assert unknown_key.status_code == 401


def test_the_route_is_documented_with_its_answers(client: TestClient):
    operation = client.get("/openapi.json").json()["paths"]["/alerts/{alert_id}"]["get"]
    assert {"200", "401", "403", "404"} <= set(operation["responses"])
    (param,) = operation["parameters"]
    assert param["name"] == "alert_id"
    assert "pattern" not in param["schema"]  # a malformed id is a 404, not a 422
