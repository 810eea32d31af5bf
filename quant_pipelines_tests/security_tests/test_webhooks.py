"""Outbound webhooks: replays under a new Idempotency-Key, and tokens echoed back in errors.

Everything runs against real loopback HTTP receivers and the real test MongoDB server.
"""

from __future__ import annotations

import logging

import dagster as dg
import httpx
import pytest
from pymongo.database import Database

from quant_pipelines.alerts import (
    IDEMPOTENCY_HEADER,
    SlackTransport,
    WebhookTransport,
    deliver_due,
    enqueue_alerts,
)
from quant_pipelines.alerts._scrub import scrub
from quant_pipelines.storage.collections import ALERT_OUTBOX
from quant_pipelines_tests.alerts_tests._support import SECRET, T0, make_anomaly, serve_receiver

WEBHOOK_TOKEN = "wh-token-5f1e9c2a7b"
SLACK_PATH = "T0123ABCD/B0456EFGH/sl4ckS3cretPathValue"
SLACK_SECRET = "sl4ckS3cretPathValue"


def test_a_replay_under_a_new_idempotency_key_fails_verification(mongo_db: Database) -> None:
    """A captured request re-sent within the 300 s tolerance with a fresh key is refused."""
    with serve_receiver(secret=SECRET) as receiver:
        enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",))
        with WebhookTransport(receiver.url, SECRET) as webhook:
            assert deliver_due(mongo_db, transports={"webhook": webhook}).sent == 1
        (original,) = receiver.requests
        assert original.verified == "ok" and original.status == 200
        captured = {k: v for k, v in original.headers.items() if k.startswith("x-qp-")}
        captured["content-type"] = "application/json"

        def replay(key: str) -> httpx.Response:
            headers = captured | {IDEMPOTENCY_HEADER: key}
            return httpx.post(receiver.url, content=original.body, headers=headers, timeout=5)

        forged = replay(original.key + "-replayed")
        assert forged.status_code == 401
        assert receiver.requests[-1].verified == "mismatch"
        # The same key still verifies (the timestamp is fresh) but is deduplicated by key.
        same = replay(original.key)
        assert same.status_code == 200 and receiver.requests[-1].verified == "ok"
        assert receiver.processed == [original.key]


def test_tokens_echoed_by_a_receiver_never_reach_last_error_or_the_logs(
    mongo_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500 whose body echoes the request URL: the webhook token and Slack path are masked."""
    caplog.set_level(logging.DEBUG)
    with serve_receiver(default_status=500, echo_url=True) as receiver:
        base = receiver.url.removesuffix("/hook")
        webhook_url = f"{receiver.url}?token={WEBHOOK_TOKEN}&tenant=acme"
        slack_url = f"{base}/services/{SLACK_PATH}"
        enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook", "slack"), now=T0)
        with (
            WebhookTransport(webhook_url, SECRET) as webhook,
            SlackTransport(slack_url) as slack,
        ):
            summary = deliver_due(mongo_db, transports={"webhook": webhook, "slack": slack}, now=T0)
        assert summary.retried == 2
        echoed = [r.path for r in receiver.requests]
    # The receiver really did echo the secrets: the test would catch a leak.
    assert any(WEBHOOK_TOKEN in p for p in echoed) and any(SLACK_SECRET in p for p in echoed)
    errors = {d["channel"]: d["last_error"] for d in mongo_db[ALERT_OUTBOX].find()}
    assert errors["webhook"].startswith("HTTP 500: error handling POST")
    assert "?token=***" in errors["webhook"]
    assert "/services/***" in errors["slack"]
    for text in (*errors.values(), caplog.text):
        for secret in (WEBHOOK_TOKEN, SLACK_SECRET, "B0456EFGH", SECRET):
            assert secret not in text
    assert "retry in" in caplog.text  # the delivery log lines were captured


class _LeakyTransport:
    """A transport whose exception message carries its URL (as httpx errors may)."""

    channel = "webhook"

    def send(self, payload, *, idempotency_key):
        raise RuntimeError(
            f"boom posting https://hooks.example/x?token={WEBHOOK_TOKEN} "
            f"and https://hooks.slack.com/services/{SLACK_PATH}"
        )


def test_a_raising_transport_logs_its_message_scrubbed(
    mongo_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook",), now=T0)
    assert deliver_due(mongo_db, transports={"webhook": _LeakyTransport()}, now=T0).retried == 1
    assert "boom posting https://hooks.example/x?token=***" in caplog.text
    doc = mongo_db[ALERT_OUTBOX].find_one()
    for text in (doc["last_error"], caplog.text):
        assert WEBHOOK_TOKEN not in text and SLACK_SECRET not in text


def test_the_dagster_delivery_job_logs_no_token(
    mongo_db: Database,
    mongo_uri: str,
    db_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The alert delivery job as Dagster runs it: nothing it logs or prints holds a token."""
    from quant_pipelines.defs.quality.jobs import alert_delivery_job
    from quant_pipelines.defs.resources import MongoResource, alert_transports

    caplog.set_level(logging.DEBUG)
    with serve_receiver(default_status=500, echo_url=True) as receiver:
        base = receiver.url.removesuffix("/hook")
        monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{receiver.url}?token={WEBHOOK_TOKEN}")
        monkeypatch.setenv("ALERT_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{base}/services/{SLACK_PATH}")
        enqueue_alerts(mongo_db, [make_anomaly()], channels=("webhook", "slack"))
        resources = {
            "mongo": MongoResource(uri=mongo_uri, database=db_name),
            "alert_transports": alert_transports(),
        }
        with dg.instance_for_test() as instance:
            result = alert_delivery_job.execute_in_process(instance=instance, resources=resources)
            assert result.success
            events = "\n".join(str(e.message or "") for e in instance.all_logs(result.run_id))
        assert len(receiver.requests) == 2  # both channels really posted and got the echo
    out, err = capfd.readouterr()
    errors = [d["last_error"] for d in mongo_db[ALERT_OUTBOX].find()]
    assert all(e and "HTTP 500" in e for e in errors)
    for text in (*errors, caplog.text, out, err, events):
        assert WEBHOOK_TOKEN not in text and SLACK_SECRET not in text and SECRET not in text


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("GET /hook?token=abc123&x=1 failed", (), "GET /hook?token=***&x=*** failed"),
        (
            "https://hooks.slack.com/services/T01/B02/xyzSECRET: 404",
            (),
            "https://hooks.slack.com/services/*** 404",
        ),
        ("see https://user:pw@host/x", (), "see https://***@host/x"),
        ('{"url": "https:\\/\\/h\\/x?k=s3cr3tvalue"}', ("https://h/x?k=s3cr3tvalue",), None),
        ("echo s3cr3t%2Fvalue", ("s3cr3t/value",), "echo ***"),
        ("signed with hunter2-signing-secret", ("hunter2-signing-secret",), "signed with ***"),
        ("what? nothing to hide here", (), "what? nothing to hide here"),
    ],
)
def test_the_scrubber_masks_query_values_slack_paths_and_configured_secrets(
    text: str, secrets: tuple[str, ...], expected: str | None
) -> None:
    out = scrub(text, secrets)
    if expected is not None:
        assert out == expected
    for secret in secrets:
        assert secret not in out
    assert "s3cr3tvalue" not in out and "xyzSECRET" not in out and "abc123" not in out
