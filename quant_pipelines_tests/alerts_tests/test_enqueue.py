"""Enqueueing into the outbox: one alert per (symbol, ts, rule) and channel, never twice."""

from __future__ import annotations

import datetime as dt
import json
import threading

import numpy as np
import pandas as pd
import pytest
from bson import ObjectId
from pymongo.database import Database

from quant_pipelines.alerts import (
    WebhookTransport,
    alert_key,
    build_payload,
    deliver_due,
    enqueue_alerts,
    idempotency_key,
)
from quant_pipelines.storage.alerts import AlertOutboxRepository
from quant_pipelines.storage.collections import ALERT_OUTBOX, ANOMALIES
from quant_pipelines_tests.alerts_tests._support import SECRET, T0, make_anomaly

OUTBOX_FIELDS = {
    "_id",
    "idempotency_key",
    "channel",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "sent_at",
    "lease_until",
}


def test_enqueue_writes_one_pending_alert_per_channel(mongo_db: Database) -> None:
    anomalies = [make_anomaly(i) for i in range(3)]
    report = enqueue_alerts(mongo_db, anomalies, channels=("webhook", "slack"), now=T0)
    assert (report.inserted, report.existing, report.skipped) == (6, 0, 0)
    docs = list(mongo_db[ALERT_OUTBOX].find())
    assert len(docs) == 6
    doc = docs[0]
    assert set(doc) == OUTBOX_FIELDS
    assert doc["status"] == "pending" and doc["attempts"] == 0
    assert doc["next_attempt_at"] == T0 and doc["created_at"] == T0
    assert doc["idempotency_key"] == f"{doc['channel']}:{doc['payload']['alert_key']}"
    assert {d["channel"] for d in docs} == {"webhook", "slack"}
    assert len({d["payload"]["alert_key"] for d in docs}) == 3


def test_enqueueing_again_adds_nothing_and_resets_nothing(mongo_db: Database, receiver) -> None:
    anomalies = [make_anomaly(i) for i in range(2)]
    enqueue_alerts(mongo_db, anomalies, channels=("webhook",), now=T0)
    with WebhookTransport(receiver.url, SECRET) as transport:
        assert deliver_due(mongo_db, transports={"webhook": transport}, now=T0).sent == 2
    before = list(mongo_db[ALERT_OUTBOX].find().sort("idempotency_key"))
    # The partition is scored again: same anomalies, later time.
    report = enqueue_alerts(mongo_db, anomalies, channels=("webhook",), now=T0 + dt.timedelta(1))
    assert (report.inserted, report.existing) == (0, 2)
    after = list(mongo_db[ALERT_OUTBOX].find().sort("idempotency_key"))
    assert after == before
    assert all(d["status"] == "sent" for d in after)
    with WebhookTransport(receiver.url, SECRET) as transport:
        assert deliver_due(mongo_db, transports={"webhook": transport}).claimed == 0
    assert len(receiver.requests) == 2


def test_only_listed_severities_are_enqueued(mongo_db: Database) -> None:
    anomalies = [
        make_anomaly(0, severity="warning"),
        make_anomaly(1),
        make_anomaly(2, severity="info"),
    ]
    report = enqueue_alerts(mongo_db, anomalies, channels=("slack",))
    assert (report.inserted, report.skipped) == (1, 2)
    report = enqueue_alerts(
        mongo_db, anomalies, channels=("slack",), severities=("warning", "critical")
    )
    assert (report.inserted, report.existing, report.skipped) == (1, 1, 1)


def test_the_key_depends_on_symbol_ts_and_rule_only() -> None:
    ts = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
    same_instant = pd.Timestamp("2024-01-02 09:30", tz="America/New_York")
    assert alert_key("AAPL", ts, "iforest") == alert_key("AAPL", same_instant, "iforest")
    assert alert_key("AAPL", ts, "iforest") == alert_key("AAPL", ts.replace(tzinfo=None), "iforest")
    assert (
        len(
            {
                alert_key("AAPL", ts, "iforest"),
                alert_key("AAPL", ts, "prophet"),
                alert_key("MSFT", ts, "iforest"),
                alert_key("AAPL", ts + dt.timedelta(1), "iforest"),
            }
        )
        == 4
    )
    assert idempotency_key("abc", "slack") == "slack:abc"
    first = build_payload({**make_anomaly(), "score": 0.5})
    second = build_payload({**make_anomaly(), "score": 0.9, "message": "other"})
    assert first["alert_key"] == second["alert_key"]


def test_payload_is_json_safe(mongo_db: Database) -> None:
    oid = ObjectId()
    anomaly = {
        **make_anomaly(),
        "_id": oid,
        "ts": pd.Timestamp("2024-01-02 14:30", tz="UTC"),
        "score": np.float64(0.97),
        "threshold": float("nan"),
        "rules": ("ohlc_inconsistent", "non_positive_price"),
        "rule": "ohlc_inconsistent",
        "links": {"asset": "http://localhost:3000/assets/bar_anomaly_scores"},
    }
    payload = build_payload(anomaly)
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    assert payload["anomaly_id"] == str(oid)
    assert payload["ts"] == "2024-01-02T14:30:00+00:00"
    assert payload["score"] == 0.97 and payload["threshold"] is None
    assert payload["rule"] == "ohlc_inconsistent" and payload["detector"] == "iforest"
    assert payload["message"].startswith("CRITICAL ohlc_inconsistent on AAPL")


def test_invalid_input_is_refused_with_a_clear_error(mongo_db: Database) -> None:
    with pytest.raises(ValueError, match="unknown alert channel"):
        enqueue_alerts(mongo_db, [make_anomaly()], channels=("email",))
    with pytest.raises(ValueError, match="missing symbol"):
        enqueue_alerts(mongo_db, [{"ts": T0, "detector": "x", "severity": "critical"}])
    assert mongo_db[ALERT_OUTBOX].count_documents({}) == 0


def test_enqueue_shares_the_session_that_records_the_anomalies(mongo_db: Database) -> None:
    client = mongo_db.client
    anomalies = [make_anomaly(i) for i in range(2)]
    with client.start_session() as session:
        mongo_db[ANOMALIES].insert_many(anomalies, session=session)
        report = enqueue_alerts(
            mongo_db, mongo_db[ANOMALIES].find(session=session), session=session
        )
    assert report.inserted == 4
    ids = {str(a["_id"]) for a in mongo_db[ANOMALIES].find()}
    assert {d["payload"]["anomaly_id"] for d in mongo_db[ALERT_OUTBOX].find()} == ids


def test_concurrent_enqueues_of_one_partition_leave_no_duplicates(mongo_db: Database) -> None:
    anomalies = [make_anomaly(i) for i in range(20)]
    reports = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        reports.append(enqueue_alerts(mongo_db, anomalies, channels=("webhook", "slack")))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mongo_db[ALERT_OUTBOX].count_documents({}) == 40
    assert sum(r.inserted for r in reports) == 40
    assert sum(r.existing for r in reports) == 120


def test_requeue_gives_a_failed_alert_a_new_budget(mongo_db: Database) -> None:
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("slack",), now=T0)
    key = mongo_db[ALERT_OUTBOX].find_one()["idempotency_key"]
    repo = AlertOutboxRepository(mongo_db)
    assert not repo.requeue(key)  # only failed alerts are requeued
    mongo_db[ALERT_OUTBOX].update_one({}, {"$set": {"status": "failed", "attempts": 6}})
    assert repo.requeue(key, now=T0)
    doc = repo.get(key)
    assert (doc["status"], doc["attempts"], doc["next_attempt_at"]) == ("pending", 0, T0)
