"""Alert delivery to a signed webhook and Slack, through the ``alert_outbox`` collection.

May import httpx and storage; never dagster or defs. Secrets come in through
:class:`~quant_pipelines.settings.Settings` only.
"""

from __future__ import annotations

from quant_pipelines.alerts.delivery import DeliverySummary, backoff_delay, deliver_due
from quant_pipelines.alerts.payload import (
    CHANNELS,
    alert_key,
    build_payload,
    enqueue_alerts,
    idempotency_key,
)
from quant_pipelines.alerts.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    compute_signature,
    signature_headers,
    verify_signature,
)
from quant_pipelines.alerts.transports import (
    SendResult,
    SlackTransport,
    Transport,
    WebhookTransport,
    parse_retry_after,
    transports_from_settings,
)
from quant_pipelines.storage.alerts import EnqueueReport

__all__ = [
    "CHANNELS",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliverySummary",
    "EnqueueReport",
    "SendResult",
    "SignatureError",
    "SlackTransport",
    "Transport",
    "WebhookTransport",
    "alert_key",
    "backoff_delay",
    "build_payload",
    "compute_signature",
    "deliver_due",
    "enqueue_alerts",
    "idempotency_key",
    "parse_retry_after",
    "signature_headers",
    "transports_from_settings",
    "verify_signature",
]
