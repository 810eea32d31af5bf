"""The delivery faults alerts must survive, each against a real loopback HTTP receiver."""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools

from pymongo.database import Database

from quant_pipelines.alerts import (
    SlackTransport,
    WebhookTransport,
    deliver_due,
    enqueue_alerts,
    verify_signature,
)
from quant_pipelines.storage.alerts import list_alerts
from quant_pipelines.storage.collections import ALERT_OUTBOX
from quant_pipelines_tests.alerts_tests._support import SECRET, T0, make_anomaly, wait_until


def _only(db: Database) -> dict:
    (doc,) = db[ALERT_OUTBOX].find()
    return doc


def test_500_three_times_then_200_is_delivered_once_after_backoff(
    mongo_db: Database, receiver
) -> None:
    receiver.respond_with(500, 500, 500)
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",), now=T0)
    base = 10.0
    now, next_times = T0, []
    with WebhookTransport(receiver.url, SECRET) as webhook:
        tick = dict(transports={"webhook": webhook}, base_delay=base, max_delay=600.0, seed=7)
        for attempt in (1, 2, 3):
            summary = deliver_due(mongo_db, now=now, **tick)
            assert (summary.claimed, summary.retried) == (1, 1)
            doc = _only(mongo_db)
            assert doc["status"] == "pending" and doc["attempts"] == attempt
            assert doc["last_error"].startswith("HTTP 500") and doc["last_status_code"] == 500
            wait = (doc["next_attempt_at"] - now).total_seconds()
            ceiling = base * 2 ** (attempt - 1)
            assert ceiling / 2 <= wait <= ceiling + 0.001  # exponential backoff with jitter
            next_times.append(doc["next_attempt_at"])
            # Before the backoff has elapsed nothing is sent.
            early = doc["next_attempt_at"] - dt.timedelta(milliseconds=1)
            assert deliver_due(mongo_db, now=early, **tick).claimed == 0
            now = doc["next_attempt_at"]
        assert deliver_due(mongo_db, now=now, **tick).sent == 1
        assert deliver_due(mongo_db, now=now + dt.timedelta(days=1), **tick).claimed == 0
    doc = _only(mongo_db)
    assert (doc["status"], doc["attempts"], doc["sent_at"]) == ("sent", 4, now)
    assert doc["last_error"] is None and doc["lease_until"] is None
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
    assert set(receiver.keys()) == {doc["idempotency_key"]}
    assert receiver.processed == [doc["idempotency_key"]]  # delivered once
    assert len({r.body for r in receiver.requests}) == 1
    for req in receiver.requests:
        verify_signature(req.body, req.headers, SECRET)


def test_500s_then_200_in_real_time_waits_between_attempts(mongo_db: Database, receiver) -> None:
    receiver.respond_with(500, 500, 500)
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",))
    with WebhookTransport(receiver.url, SECRET) as webhook:
        tick = dict(transports={"webhook": webhook}, base_delay=0.05, max_delay=1.0)
        assert wait_until(lambda: deliver_due(mongo_db, **tick).sent == 1, timeout=10)
    arrivals = [r.at for r in receiver.requests]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) == 4 and receiver.processed == [_only(mongo_db)["idempotency_key"]]
    assert all(g >= 0.05 * 2**n / 2 for n, g in enumerate(gaps))


def test_slack_429_with_retry_after_2_waits_at_least_2_seconds(
    mongo_db: Database, receiver
) -> None:
    receiver.respond_with((429, {"Retry-After": "2"}))
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("slack",))
    with SlackTransport(receiver.url) as slack:
        # A tiny backoff: without Retry-After the next try would follow almost at once.
        tick = dict(transports={"slack": slack}, base_delay=0.01, max_delay=0.02)
        assert deliver_due(mongo_db, **tick).retried == 1
        doc = _only(mongo_db)
        first = receiver.requests[0].at
        assert doc["last_status_code"] == 429
        assert doc["next_attempt_at"].timestamp() - first >= 2.0
        assert wait_until(
            lambda: deliver_due(mongo_db, **tick).sent == 1, timeout=10, interval=0.05
        )
    assert [r.status for r in receiver.requests] == [429, 200]
    assert receiver.requests[1].at - first >= 2.0
    assert _only(mongo_db)["status"] == "sent"


def test_retry_after_as_an_http_date_is_honoured(mongo_db: Database, receiver) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    receiver.respond_with((429, {"Retry-After": email.utils.format_datetime(later, usegmt=True)}))
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",))
    with WebhookTransport(receiver.url, SECRET) as webhook:
        deliver_due(mongo_db, transports={"webhook": webhook}, base_delay=0.01)
    wait = _only(mongo_db)["next_attempt_at"] - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=59) < wait <= dt.timedelta(hours=1)


def test_receiver_down_for_good_marks_failed_after_max_attempts_and_keeps_it(
    mongo_db: Database, dead_url: str
) -> None:
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",), now=T0)
    now, outcomes = T0, []
    with WebhookTransport(dead_url, SECRET, timeout=2.0) as webhook:
        tick = dict(transports={"webhook": webhook}, max_attempts=4, base_delay=1.0)
        for _ in range(6):
            summary = deliver_due(mongo_db, now=now, **tick)
            outcomes.append((summary.retried, summary.failed))
            now += dt.timedelta(hours=1)
    assert outcomes == [(1, 0), (1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    doc = _only(mongo_db)
    assert (doc["status"], doc["attempts"]) == ("failed", 4)
    assert "ConnectError" in doc["last_error"] and "(4 attempts)" in doc["last_error"]
    assert SECRET not in str(doc)
    (row,) = list_alerts(mongo_db, delivery_status="failed")
    assert row["idempotency_key"] == doc["idempotency_key"]
    assert row["symbol"] == "AAPL" and row["attempts"] == 4 and row["last_error"]


def test_receiver_failing_for_good_gets_exactly_max_attempts(mongo_db: Database, receiver) -> None:
    receiver.default_status = 503
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("slack",), now=T0)
    with SlackTransport(receiver.url) as slack:
        for hour in range(10):
            now = T0 + dt.timedelta(hours=hour)
            deliver_due(mongo_db, transports={"slack": slack}, now=now, max_attempts=3)
    assert len(receiver.requests) == 3
    assert _only(mongo_db)["status"] == "failed"


def test_a_permanent_client_error_fails_at_once(mongo_db: Database, receiver) -> None:
    receiver.respond_with(400)
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("slack",), now=T0)
    with SlackTransport(receiver.url) as slack:
        assert deliver_due(mongo_db, transports={"slack": slack}, now=T0).failed == 1
    doc = _only(mongo_db)
    assert doc["attempts"] == 1 and "permanent" in doc["last_error"]


class _Raising:
    channel = "webhook"

    def send(self, payload, *, idempotency_key):
        raise RuntimeError("boom with https://secret.example/token")


def test_a_transport_that_raises_is_retried_without_leaking_its_message(
    mongo_db: Database,
) -> None:
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",), now=T0)
    assert deliver_due(mongo_db, transports={"webhook": _Raising()}, now=T0).retried == 1
    assert _only(mongo_db)["last_error"] == "transport raised RuntimeError"


def test_alerts_of_a_disabled_channel_stay_pending(mongo_db: Database, receiver) -> None:
    enqueue_alerts(mongo_db, [make_anomaly(i) for i in range(2)], channels=("webhook", "slack"))
    with WebhookTransport(receiver.url, SECRET) as webhook:
        summary = deliver_due(mongo_db, transports={"webhook": webhook})
    assert (summary.sent, summary.disabled_pending) == (2, 2)
    assert deliver_due(mongo_db, transports={}).disabled_pending == 2
    statuses = {d["channel"]: d["status"] for d in mongo_db[ALERT_OUTBOX].find()}
    assert statuses == {"webhook": "sent", "slack": "pending"}


def test_one_tick_sends_each_alert_at_most_once_and_respects_the_limit(
    mongo_db: Database, receiver
) -> None:
    receiver.default_status = 500
    enqueue_alerts(mongo_db, [make_anomaly(i) for i in range(5)], channels=("webhook",))
    with WebhookTransport(receiver.url, SECRET) as webhook:
        # A zero backoff makes every alert due again at once; one tick still sends each once.
        tick = dict(transports={"webhook": webhook}, base_delay=0.0, max_delay=0.0)
        assert deliver_due(mongo_db, limit=3, **tick).claimed == 3
        assert deliver_due(mongo_db, **tick).claimed == 5
    assert len(receiver.requests) == 8
    assert sorted(d["attempts"] for d in mongo_db[ALERT_OUTBOX].find()) == [1, 1, 2, 2, 2]
