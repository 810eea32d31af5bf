"""Alert payloads link to the anomaly's console page; the host comes from ``QP_CONSOLE_URL``."""

from __future__ import annotations

import pytest
from bson import ObjectId
from pymongo.database import Database

from quant_pipelines.alerts import SlackTransport, WebhookTransport, build_payload, enqueue_alerts
from quant_pipelines.alerts._slack import slack_message
from quant_pipelines.settings import Secret, console_base_url, load_settings
from quant_pipelines.storage.collections import ALERT_OUTBOX
from quant_pipelines_tests.alerts_tests._support import SECRET, make_anomaly

OID = ObjectId("65f000000000000000000001")


def test_the_payload_carries_the_console_link_of_its_anomaly():
    payload = build_payload(
        {**make_anomaly(), "_id": OID},
        links={"run": "http://x/runs/1"},
        console_url="https://quant.example.com/",
    )
    assert payload["links"] == {
        "run": "http://x/runs/1",
        "console": f"https://quant.example.com/console/anomalies/{OID}",
    }
    assert "console" not in build_payload(make_anomaly(), console_url="https://q")["links"]
    assert "console" not in build_payload({**make_anomaly(), "_id": OID})["links"]
    odd = build_payload({**make_anomaly(), "_id": "a/b?c"}, console_url="http://h:8000")
    assert odd["links"]["console"] == "http://h:8000/console/anomalies/a%2Fb%3Fc"


def test_enqueued_alerts_link_to_the_console_at_qp_console_url(
    mongo_db: Database, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("QP_CONSOLE_URL", "https://quant.example.com/desk")
    enqueue_alerts(mongo_db, [{**make_anomaly(0), "_id": OID}], channels=("webhook", "slack"))
    links = [d["payload"]["links"]["console"] for d in mongo_db[ALERT_OUTBOX].find()]
    assert links == [f"https://quant.example.com/desk/console/anomalies/{OID}"] * 2
    monkeypatch.delenv("QP_CONSOLE_URL")
    monkeypatch.setenv("QP_API_PORT", "8123")
    enqueue_alerts(mongo_db, [{**make_anomaly(1), "_id": OID}], channels=("slack",))
    newest = mongo_db[ALERT_OUTBOX].find_one({"payload.ts": {"$regex": "2024-01-03"}})
    assert newest["payload"]["links"]["console"] == f"http://127.0.0.1:8123/console/anomalies/{OID}"


def test_an_invalid_console_url_is_refused_before_anything_is_enqueued(
    mongo_db: Database, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("QP_CONSOLE_URL", "quant.example.com")
    with pytest.raises(ValueError, match="QP_CONSOLE_URL must be an http"):
        enqueue_alerts(mongo_db, [{**make_anomaly(), "_id": OID}])
    assert mongo_db[ALERT_OUTBOX].count_documents({}) == 0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"QP_CONSOLE_URL": "https://q.example.com/"}, "https://q.example.com"),
        ({"QP_API_HOST": "0.0.0.0", "QP_API_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"QP_API_HOST": "::1"}, "http://[::1]:8000"),
    ],
    ids=["default", "configured", "wildcard-bind", "ipv6"],
)
def test_console_base_url(env: dict[str, str], expected: str):
    assert console_base_url(env) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://q",
        "https://",
        "q.example.com",
        "http://q?x=1",
        "http://q#f",
        "http://q:99999",
        "http://q/a b",
    ],
    ids=str,
)
def test_bad_console_urls_are_named(url: str):
    with pytest.raises(ValueError, match="QP_CONSOLE_URL") as error:
        console_base_url({"QP_CONSOLE_URL": url})
    assert repr(url) in str(error.value)


def test_a_console_url_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(ValueError, match="QP_CONSOLE_URL") as error:
        console_base_url({"QP_CONSOLE_URL": "https://user:hunter2@q.example.com"})
    assert "hunter2" not in str(error.value)


def test_settings_carry_the_console_url():
    env = {"MONGODB_URI": "mongodb://127.0.0.1:1/", "QP_CONSOLE_URL": "https://q.example.com"}
    assert load_settings(env).console_url == "https://q.example.com"


def test_slack_shows_an_open_in_console_link_and_the_webhook_carries_it(receiver):
    console = f"https://q.example.com/console/anomalies/{OID}"
    payload = build_payload(
        {**make_anomaly(), "_id": OID},
        links={"run": "http://x/runs/1"},
        console_url="https://q.example.com",
    )
    message = slack_message(payload)
    assert [b["type"] for b in message["blocks"]] == [
        "section",
        "section",
        "section",
        "context",
        "context",
    ]
    assert message["blocks"][2]["text"]["text"] == f"<{console}|Open in the analyst console>"
    assert message["blocks"][3]["elements"][0]["text"] == "<http://x/runs/1|run>"
    hostile = slack_message({**payload, "links": {"console": "https://q/a|b>c&d"}})
    assert (
        hostile["blocks"][2]["text"]["text"]
        == "<https://q/a%7Cb%3Ec&amp;d|Open in the analyst console>"
    )
    with WebhookTransport(receiver.url, Secret(SECRET)) as webhook:
        assert webhook.send(payload, idempotency_key="webhook:k").ok
    with SlackTransport(receiver.url) as slack:
        assert slack.send(payload, idempotency_key="slack:k").ok
    webhook_body, slack_body = (r.json() for r in receiver.requests)
    assert webhook_body["links"]["console"] == console
    assert console in slack_body["blocks"][2]["text"]["text"]
