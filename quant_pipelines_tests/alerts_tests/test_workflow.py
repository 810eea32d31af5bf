"""The analysts' workflow on anomalies: transitions, history, time to resolution, FP rate."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from bson import ObjectId
from pymongo.database import Database

from quant_pipelines.alerts import SlackTransport, deliver_due, enqueue_alerts
from quant_pipelines.storage.alerts import (
    AnomalyNotFoundError,
    InvalidTransitionError,
    false_positive_rate,
    list_alerts,
    list_anomalies,
    time_to_resolution,
    transition,
)
from quant_pipelines.storage.collections import ANOMALIES
from quant_pipelines_tests.alerts_tests._support import T0, make_anomaly

H = dt.timedelta(hours=1)


def _insert(db: Database, *anomalies: dict) -> list[ObjectId]:
    return list(db[ANOMALIES].insert_many(list(anomalies)).inserted_ids)


def test_ack_then_resolve_is_timestamped_and_gives_time_to_resolution(mongo_db: Database) -> None:
    anomaly = make_anomaly()
    (oid,) = _insert(mongo_db, anomaly)
    opened = anomaly["created_at"]
    acked = transition(mongo_db, oid, "ack", actor="ana", now=opened + H)
    assert acked["status"] == "acknowledged" and acked["acknowledged_at"] == opened + H
    done = transition(
        mongo_db, str(oid), "resolve", note="vendor fixed the feed", now=opened + 3 * H
    )
    assert done["status"] == "resolved"
    assert done["resolved_at"] == done["closed_at"] == opened + 3 * H
    assert done["time_to_resolution_s"] == 3 * 3600
    assert [(h["action"], h["from"], h["to"]) for h in done["history"]] == [
        ("ack", "open", "acknowledged"),
        ("resolve", "acknowledged", "resolved"),
    ]
    assert done["history"][0]["actor"] == "ana"
    assert done["history"][1]["note"] == "vendor fixed the feed"


def test_repeating_the_last_action_is_a_no_op(mongo_db: Database) -> None:
    (oid,) = _insert(mongo_db, make_anomaly())
    first = transition(mongo_db, oid, "false_positive", now=T0)
    again = transition(mongo_db, oid, "false_positive", now=T0 + H)
    assert again == first and len(again["history"]) == 1
    assert again["false_positive_at"] == T0


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("resolve", "false_positive"),
        ("resolve", "ack"),
        ("false_positive", "resolve"),
        ("false_positive", "ack"),
        ("ack", "ack_then_refused"),
    ],
)
def test_terminal_statuses_refuse_other_actions(mongo_db: Database, first: str, then: str) -> None:
    (oid,) = _insert(mongo_db, make_anomaly())
    transition(mongo_db, oid, first, now=T0)
    if then == "ack_then_refused":  # acknowledged -> ack is a no-op, not an error
        assert transition(mongo_db, oid, "ack")["status"] == "acknowledged"
        return
    with pytest.raises(InvalidTransitionError, match=f"cannot {then} anomaly .*: it is already"):
        transition(mongo_db, oid, then)
    assert len(mongo_db[ANOMALIES].find_one({"_id": oid})["history"]) == 1


def test_unknown_action_and_unknown_id_are_clear_errors(mongo_db: Database) -> None:
    (oid,) = _insert(mongo_db, make_anomaly())
    with pytest.raises(ValueError, match="unknown action 'close'"):
        transition(mongo_db, oid, "close")
    with pytest.raises(AnomalyNotFoundError, match="no anomaly with id"):
        transition(mongo_db, str(ObjectId()), "ack")
    with pytest.raises(AnomalyNotFoundError):
        transition(mongo_db, "not-an-id", "ack")


def test_string_ids_and_documents_without_status_work(mongo_db: Database) -> None:
    doc = {k: v for k, v in make_anomaly().items() if k != "status"}
    _insert(mongo_db, {**doc, "_id": "AAPL|2024-01-02|iforest"})
    assert [a["_id"] for a in list_anomalies(mongo_db, status="open")] == [
        "AAPL|2024-01-02|iforest"
    ]
    assert transition(mongo_db, "AAPL|2024-01-02|iforest", "resolve")["status"] == "resolved"
    assert list_anomalies(mongo_db, status="open") == []


def test_concurrent_analysts_cannot_both_close_one_anomaly(mongo_db: Database) -> None:
    (oid,) = _insert(mongo_db, make_anomaly())
    barrier, outcomes = threading.Barrier(2), []

    def act(action: str) -> None:
        barrier.wait()
        try:
            outcomes.append(transition(mongo_db, oid, action)["status"])
        except InvalidTransitionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=act, args=(a,)) for a in ("resolve", "false_positive")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = mongo_db[ANOMALIES].find_one({"_id": oid})
    assert sorted(outcomes) == sorted([final["status"], "refused"])
    assert len(final["history"]) == 1


def test_time_to_resolution_and_false_positive_rate(mongo_db: Database) -> None:
    ids = _insert(
        mongo_db, *[make_anomaly(i, severity="critical" if i < 4 else "warning") for i in range(6)]
    )
    docs = {d["_id"]: d for d in mongo_db[ANOMALIES].find()}
    hours = {ids[0]: 1, ids[1]: 2, ids[2]: 6}
    for oid, h in hours.items():
        transition(mongo_db, oid, "resolve", now=docs[oid]["created_at"] + h * H)
    transition(mongo_db, ids[3], "false_positive", now=docs[ids[3]]["created_at"] + 10 * H)
    transition(mongo_db, ids[4], "ack")  # reviewed only when closed
    stats = time_to_resolution(mongo_db)
    assert (stats.count, stats.mean_s, stats.median_s, stats.max_s) == (
        3,
        3 * 3600,
        2 * 3600,
        6 * 3600,
    )
    assert 2 * 3600 <= stats.p90_s <= 6 * 3600
    assert time_to_resolution(mongo_db, include_false_positives=True).count == 4
    assert time_to_resolution(mongo_db, severity="warning").count == 0
    assert time_to_resolution(mongo_db, severity="warning").mean_s is None
    fp = false_positive_rate(mongo_db)
    assert (fp.false_positives, fp.reviewed, fp.total, fp.rate) == (1, 4, 6, 0.25)
    window = false_positive_rate(mongo_db, since=docs[ids[3]]["ts"], until=docs[ids[5]]["ts"])
    assert (window.false_positives, window.reviewed, window.total, window.rate) == (1, 1, 2, 1.0)
    assert false_positive_rate(mongo_db, severity="warning").rate is None


def test_list_alerts_shows_delivery_and_workflow_status(mongo_db: Database, receiver) -> None:
    ids = _insert(mongo_db, make_anomaly(0), make_anomaly(1))
    enqueue_alerts(mongo_db, mongo_db[ANOMALIES].find(), channels=("slack",), now=T0)
    receiver.respond_with(410)  # the first alert fails for good
    with SlackTransport(receiver.url) as slack:
        deliver_due(mongo_db, transports={"slack": slack}, now=T0)
    transition(mongo_db, ids[1], "ack")
    rows = {r["anomaly_id"]: r for r in list_alerts(mongo_db)}
    assert {r["delivery_status"] for r in rows.values()} == {"sent", "failed"}
    assert rows[str(ids[1])]["anomaly_status"] == "acknowledged"
    assert rows[str(ids[0])]["anomaly_status"] == "open"
    failed = list_alerts(mongo_db, delivery_status="failed")
    assert len(failed) == 1 and failed[0]["last_error"].startswith("HTTP 410")
    assert list_alerts(mongo_db, symbol="MSFT") == []
    assert len(list_alerts(mongo_db, severity="critical", channel="slack")) == 2
