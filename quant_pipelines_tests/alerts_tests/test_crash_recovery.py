"""No duplicates: a worker process that dies mid-way, and workers racing for the same alerts.

The dying worker is a real child process (``os._exit`` / SIGKILL), not a simulated one.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import threading

import pytest
from pymongo.database import Database

from quant_pipelines.alerts import WebhookTransport, deliver_due, enqueue_alerts
from quant_pipelines.storage.alerts import AlertOutboxRepository
from quant_pipelines.storage.collections import ALERT_OUTBOX
from quant_pipelines_tests.alerts_tests._support import SECRET, T0, make_anomaly

WORKER = textwrap.dedent(
    """
    import datetime as dt, os, sys, time
    from quant_pipelines.alerts import WebhookTransport, deliver_due, enqueue_alerts
    from quant_pipelines.storage import make_client

    uri, name, url, secret, mode = sys.argv[1:6]
    db = make_client(uri)[name]
    anomaly = {"symbol": "AAPL", "ts": dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC),
               "detector": "iforest", "severity": "critical", "score": 0.9, "threshold": 0.7}
    enqueue_alerts(db, [anomaly], channels=("webhook",))
    print("recorded", flush=True)
    if mode == "after_record":
        time.sleep(60)  # killed here by the test

    class Dying:
        channel = "webhook"
        def __init__(self):
            self.real = WebhookTransport(url, secret)
        def send(self, payload, *, idempotency_key):
            if mode == "after_send":
                self.real.send(payload, idempotency_key=idempotency_key)
            os._exit(3)  # dies before the outcome is recorded

    deliver_due(db, transports={"webhook": Dying()}, lease_s=30)
    """
)


def _run_worker(uri: str, db: Database, receiver, mode: str) -> None:
    """Runs a worker process that records an alert, then dies as ``mode`` says."""
    args = [sys.executable, "-c", WORKER, uri, db.name, receiver.url, SECRET, mode]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "recorded"
    if mode == "after_record":
        proc.kill()
    assert proc.wait(timeout=30) != 0


@pytest.mark.slow
def test_process_killed_after_recording_is_delivered_once_on_next_tick(
    mongo_db: Database, receiver, mongo_uri: str
) -> None:
    _run_worker(mongo_uri, mongo_db, receiver, "after_record")
    (doc,) = mongo_db[ALERT_OUTBOX].find()
    assert doc["status"] == "pending" and receiver.requests == []
    with WebhookTransport(receiver.url, SECRET) as webhook:
        assert deliver_due(mongo_db, transports={"webhook": webhook}).sent == 1
        assert deliver_due(mongo_db, transports={"webhook": webhook}).claimed == 0
    assert receiver.processed == [doc["idempotency_key"]]
    assert len(receiver.requests) == 1


@pytest.mark.slow
def test_process_dying_after_claim_before_send_is_recovered_after_the_lease(
    mongo_db: Database, receiver, mongo_uri: str
) -> None:
    _run_worker(mongo_uri, mongo_db, receiver, "before_send")
    (doc,) = mongo_db[ALERT_OUTBOX].find()
    assert (doc["status"], doc["attempts"]) == ("sending", 1)
    with WebhookTransport(receiver.url, SECRET) as webhook:
        transports = {"webhook": webhook}
        # The dead worker's lease still holds: nobody else may send meanwhile.
        assert deliver_due(mongo_db, transports=transports).claimed == 0
        # The next tick after the lease expired recovers the alert.
        assert deliver_due(mongo_db, transports=transports, now=doc["lease_until"]).sent == 1
        later = doc["lease_until"] + dt.timedelta(hours=1)
        assert deliver_due(mongo_db, transports=transports, now=later).claimed == 0
    assert len(receiver.requests) == 1 and receiver.processed == [doc["idempotency_key"]]
    final = mongo_db[ALERT_OUTBOX].find_one()
    assert (final["status"], final["attempts"]) == ("sent", 2)


@pytest.mark.slow
def test_process_dying_after_send_before_recording_is_resent_with_the_same_key(
    mongo_db: Database, receiver, mongo_uri: str
) -> None:
    _run_worker(mongo_uri, mongo_db, receiver, "after_send")
    (doc,) = mongo_db[ALERT_OUTBOX].find()
    assert doc["status"] == "sending" and len(receiver.requests) == 1
    with WebhookTransport(receiver.url, SECRET) as webhook:
        assert deliver_due(mongo_db, transports={"webhook": webhook}, now=doc["lease_until"]).sent
    # Sent twice on the wire (the outcome of the first was lost with the process), with one
    # Idempotency-Key: a receiver that honours it processes the alert once.
    assert receiver.keys() == [doc["idempotency_key"]] * 2
    assert receiver.processed == [doc["idempotency_key"]]


def test_a_reclaimed_alert_past_its_last_attempt_fails_without_a_send(
    mongo_db: Database, receiver
) -> None:
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",), now=T0)
    repo = AlertOutboxRepository(mongo_db)
    lease = T0 + dt.timedelta(seconds=30)
    assert repo.claim_next(channels=["webhook"], now=T0, lease_until=lease)  # then "dies"
    with WebhookTransport(receiver.url, SECRET) as webhook:
        summary = deliver_due(mongo_db, transports={"webhook": webhook}, now=lease, max_attempts=1)
    assert summary.failed == 1 and receiver.requests == []
    assert "attempts exhausted" in mongo_db[ALERT_OUTBOX].find_one()["last_error"]


def test_a_worker_whose_lease_expired_cannot_overwrite_the_new_owner(mongo_db: Database) -> None:
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("slack",), now=T0)
    repo = AlertOutboxRepository(mongo_db)
    slow = repo.claim_next(channels=["slack"], now=T0, lease_until=T0 + dt.timedelta(seconds=1))
    later = T0 + dt.timedelta(seconds=2)
    fast = repo.claim_next(channels=["slack"], now=later, lease_until=later + dt.timedelta(60))
    assert fast["claim_id"] != slow["claim_id"]
    assert repo.finish(fast, "sent", now=later, status_code=200)
    assert not repo.finish(slow, "pending", now=later, error="late", next_attempt_at=later)
    assert not repo.finish(slow, "failed", now=later, error="late")
    doc = repo.get(fast["idempotency_key"])
    assert doc["status"] == "sent" and doc["last_error"] is None


def test_concurrent_workers_never_send_one_key_twice(mongo_db: Database, receiver) -> None:
    receiver.delay_s = 0.01  # keep sends in flight while the other workers claim
    enqueue_alerts(mongo_db, [make_anomaly(i) for i in range(30)], channels=("webhook",))
    barrier = threading.Barrier(4)
    summaries = []

    def worker() -> None:
        with WebhookTransport(receiver.url, SECRET) as webhook:
            barrier.wait()
            summaries.append(deliver_due(mongo_db, transports={"webhook": webhook}))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    keys = receiver.keys()
    assert len(keys) == len(set(keys)) == 30
    assert sum(s.sent for s in summaries) == 30
    assert sum(s.sent > 0 for s in summaries) >= 2  # the work really was shared
    assert mongo_db[ALERT_OUTBOX].count_documents({"status": "sent"}) == 30
