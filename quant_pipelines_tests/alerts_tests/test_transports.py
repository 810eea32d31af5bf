"""Transports against a real loopback receiver: request shape, signatures, secrets, settings."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quant_pipelines.alerts import (
    SignatureError,
    SlackTransport,
    WebhookTransport,
    backoff_delay,
    build_payload,
    parse_retry_after,
    transports_from_settings,
    verify_signature,
)
from quant_pipelines.settings import Secret, load_settings
from quant_pipelines_tests.alerts_tests._support import SECRET, make_anomaly

SLACK_TOKENISH = "T0000/B0000/XXXXsecretXXXX"


def test_webhook_posts_signed_json_with_idempotency_key(receiver) -> None:
    payload = build_payload(make_anomaly(), links={"dagster": "http://localhost:3000/runs/abc"})
    with WebhookTransport(receiver.url, Secret(SECRET)) as transport:
        result = transport.send(payload, idempotency_key="webhook:k1")
    assert result.ok and result.status_code == 200
    (req,) = receiver.requests
    assert req.key == "webhook:k1"
    assert req.headers["content-type"] == "application/json"
    assert req.json() == payload
    verify_signature(req.body, req.headers, SECRET)  # what the receiver runs
    with pytest.raises(SignatureError):
        verify_signature(req.body, req.headers, "not-the-secret")


def test_slack_posts_text_and_blocks(receiver) -> None:
    payload = build_payload(make_anomaly(), links={"run": "http://x/runs/1"})
    with SlackTransport(receiver.url) as transport:
        assert transport.send(payload, idempotency_key="slack:k1").ok
    body = receiver.requests[0].json()
    assert body["text"].startswith(":rotating_light: CRITICAL iforest on AAPL")
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context", "context"]
    fields = " ".join(f["text"] for f in body["blocks"][1]["fields"])
    assert "AAPL" in fields and "0.91" in fields
    assert "<http://x/runs/1|run>" in body["blocks"][2]["elements"][0]["text"]


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (410, True)])
def test_client_errors_are_permanent_and_server_errors_are_not(
    receiver, status: int, permanent: bool
) -> None:
    receiver.respond_with(status, 500, 408)
    with SlackTransport(receiver.url) as transport:
        results = [transport.send({"message": "m"}, idempotency_key="k") for _ in range(3)]
    assert [r.permanent for r in results] == [permanent, False, False]
    assert [r.status_code for r in results] == [status, 500, 408]
    assert not any(r.ok for r in results)


def test_secrets_never_appear_in_reprs_or_errors(dead_url: str) -> None:
    slack_url = f"{dead_url}/services/{SLACK_TOKENISH}"
    slack = SlackTransport(Secret(slack_url), timeout=2.0)
    webhook = WebhookTransport(dead_url, SECRET, timeout=2.0)
    result = slack.send({"message": "m"}, idempotency_key="k")
    assert not result.ok and result.status_code is None
    assert "ConnectError" in result.error
    for text in (result.error, repr(slack), repr(webhook)):
        assert SLACK_TOKENISH not in text and SECRET not in text
    slack.close()
    webhook.close()


def test_transports_from_settings_enables_configured_channels_only(caplog) -> None:
    caplog.set_level(logging.INFO, logger="quant_pipelines.alerts")
    assert transports_from_settings(load_settings({})) == {}
    assert "'webhook' disabled: ALERT_WEBHOOK_URL is not set" in caplog.text
    assert "'slack' disabled: SLACK_WEBHOOK_URL is not set" in caplog.text
    caplog.clear()
    unsigned = load_settings({"ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    assert transports_from_settings(unsigned) == {}
    assert "ALERT_WEBHOOK_SECRET is not set" in caplog.text
    caplog.clear()
    env = {
        "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "ALERT_WEBHOOK_SECRET": SECRET,
        "SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/{SLACK_TOKENISH}",
    }
    transports = transports_from_settings(load_settings(env))
    assert sorted(transports) == ["slack", "webhook"]
    assert isinstance(transports["webhook"], WebhookTransport)
    assert SLACK_TOKENISH not in repr(transports) and SECRET not in repr(transports)
    assert SLACK_TOKENISH not in caplog.text and SECRET not in caplog.text
    for t in transports.values():
        t.close()


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    now = dt.datetime(2024, 1, 3, 12, 0, tzinfo=dt.UTC)
    date = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(date, now=now) == 90.0
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None


@given(
    attempt=st.integers(min_value=1, max_value=80),
    base=st.floats(min_value=0.001, max_value=100),
    cap=st.floats(min_value=0.001, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_is_bounded_seeded_and_jittered(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    delay = backoff_delay(attempt, base_delay=base, max_delay=cap, rng=random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling
    again = backoff_delay(attempt, base_delay=base, max_delay=cap, rng=random.Random(seed))
    assert delay == again


def test_backoff_grows_exponentially_until_the_cap() -> None:
    ceilings = [min(60.0, 1.0 * 2 ** (n - 1)) for n in range(1, 10)]
    delays = [
        backoff_delay(n, base_delay=1.0, max_delay=60.0, rng=random.Random(n)) for n in range(1, 10)
    ]
    assert all(c / 2 <= d <= c for c, d in zip(ceilings, delays, strict=True))
    assert delays[-1] >= 30.0
