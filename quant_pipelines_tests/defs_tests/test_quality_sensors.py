"""The alert relay: the sensor and the job deliver the outbox through the transports resource."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster_slack import SlackResource
from pymongo.database import Database

from quant_pipelines.alerts import SIGNATURE_HEADER, enqueue_alerts
from quant_pipelines.defs.quality.jobs import alert_delivery_job
from quant_pipelines.defs.quality.sensors import alert_delivery_sensor
from quant_pipelines.defs.resources import (
    AlertTransportsResource,
    MongoResource,
    WebhookResource,
)
from quant_pipelines_tests.alerts_tests._support import (
    SECRET,
    Receiver,
    make_anomaly,
    serve_receiver,
)


@pytest.fixture
def receiver() -> Receiver:
    """A live webhook receiver on loopback that verifies every signature with ``SECRET``."""
    with serve_receiver(secret=SECRET) as recv:
        yield recv


def _webhook_only(receiver: Receiver) -> AlertTransportsResource:
    """The webhook channel pointed at ``receiver``; Slack disabled (no token, no URL)."""
    return AlertTransportsResource(
        webhook=WebhookResource(url=receiver.url, secret=SECRET), slack=SlackResource(token="")
    )


def _outbox(db: Database) -> dict[str, dict]:
    return {d["channel"]: d for d in db.alert_outbox.find({})}


def test_alert_delivery_sensor_runs_by_default() -> None:
    assert alert_delivery_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_sensor_delivers_the_outbox_signed_to_the_resources_webhook(
    mongo_resource: MongoResource, mongo_db: Database, receiver: Receiver, monkeypatch
) -> None:
    # The environment names no channel: the transports come from the resource alone.
    for name in ("ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    assert enqueue_alerts(mongo_db, [make_anomaly(symbol="AAPL")]).inserted == 2
    resources = {"mongo": mongo_resource, "alert_transports": _webhook_only(receiver)}
    with dg.build_sensor_context(resources=resources) as context:
        tick = alert_delivery_sensor(context)
        again = alert_delivery_sensor(context)  # nothing due any more

    assert isinstance(tick, dg.SkipReason) and "sent 1" in tick.skip_message
    outbox = _outbox(mongo_db)
    assert outbox["webhook"]["status"] == "sent"
    assert outbox["slack"]["status"] == "pending"  # disabled channel: kept for later
    [request] = receiver.requests
    assert request.verified == "ok" and request.headers[SIGNATURE_HEADER.lower()]
    assert request.key == outbox["webhook"]["idempotency_key"]
    assert receiver.processed == [outbox["webhook"]["idempotency_key"]]
    assert request.json()["symbol"] == "AAPL"

    assert "sent 0" in again.skip_message and len(receiver.requests) == 1


def test_alert_delivery_job_uses_the_transports_resource(
    mongo_resource: MongoResource, mongo_db: Database, receiver: Receiver
) -> None:
    enqueue_alerts(mongo_db, [make_anomaly(i) for i in range(3)], channels=["webhook"])
    result = alert_delivery_job.execute_in_process(
        resources={"mongo": mongo_resource, "alert_transports": _webhook_only(receiver)}
    )
    assert result.success
    assert result.output_for_node("deliver_alerts") == {
        "claimed": 3,
        "sent": 3,
        "retried": 0,
        "failed": 0,
    }
    assert sorted(r.verified for r in receiver.requests) == ["ok"] * 3
    assert mongo_db.alert_outbox.count_documents({"status": "sent"}) == 3
