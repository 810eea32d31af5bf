"""Alert payloads, their deterministic keys, and enqueueing into ``alert_outbox``.

A payload's ``links.console`` opens the anomaly in the analyst console
(``<QP_CONSOLE_URL>/console/anomalies/<anomaly_id>``), where it is acknowledged, resolved or
marked false positive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pymongo.client_session import ClientSession
from pymongo.database import Database

from quant_pipelines._utils.jsonsafe import json_safe
from quant_pipelines._utils.time import utc
from quant_pipelines.settings import console_base_url
from quant_pipelines.storage.alerts import AlertOutboxRepository, EnqueueReport

CHANNELS = ("webhook", "slack")
#: Name of the link to the anomaly's console page in ``payload["links"]``.
CONSOLE_LINK = "console"
#: Anomaly fields copied into the payload when present (besides the identifying ones).
_OPTIONAL = ("detector", "score", "threshold", "batch_id", "asset_class", "flags", "rules")


def alert_key(symbol: str, ts: Any, rule: str) -> str:
    """The deterministic key of one alert: sha256 of ``f"{symbol}|{ts UTC ISO}|{rule}"``."""
    return hashlib.sha256(f"{symbol}|{utc(ts).isoformat()}|{rule}".encode()).hexdigest()


def idempotency_key(key: str, channel: str) -> str:
    """The outbox key (and ``Idempotency-Key`` header) of one alert on one channel."""
    return f"{channel}:{key}"


def console_link(console_url: str, anomaly_id: Any) -> str:
    """The URL of one anomaly's page in the analyst console.

    Args:
        console_url: The console's base URL (``QP_CONSOLE_URL``), with or without a trailing
            slash.
        anomaly_id: The anomaly's id (an ObjectId or its string).

    Returns:
        ``<console_url>/console/anomalies/<id>``, the id percent-encoded.
    """
    return f"{console_url.rstrip('/')}/console/anomalies/{quote(str(anomaly_id), safe='')}"


def _default_message(payload: Mapping[str, Any]) -> str:
    severity = str(payload["severity"]).upper()
    text = f"{severity} {payload['rule']} on {payload['symbol']} at {payload['ts']}"
    score, threshold = payload.get("score"), payload.get("threshold")
    if isinstance(score, (int, float)) and isinstance(threshold, (int, float)):
        text += f": score {score:.4g} vs threshold {threshold:.4g}"
    return text


def build_payload(
    anomaly: Mapping[str, Any],
    *,
    links: Mapping[str, str] | None = None,
    console_url: str | None = None,
) -> dict:
    """The JSON-safe alert payload of one anomaly (or failed check).

    Args:
        anomaly: A mapping with ``symbol``, ``ts``, ``rule`` or ``detector``, ``severity`` and
            optionally ``score``, ``threshold``, ``message``, ``_id``/``anomaly_id``, ``links``.
        links: Extra links (e.g. the Dagster run or asset page), merged over the anomaly's.
        console_url: The analyst console's base URL; with an anomaly id, the payload's
            ``links.console`` is that anomaly's console page (none without either).

    Returns:
        The payload, including ``alert_key``.

    Raises:
        ValueError: A required field is missing.
    """
    rule = anomaly.get("rule") or anomaly.get("detector")
    missing = [f for f in ("symbol", "ts") if anomaly.get(f) is None] + ([] if rule else ["rule"])
    if missing:
        raise ValueError(f"cannot build an alert: missing {', '.join(missing)}")
    ts = utc(anomaly["ts"])
    anomaly_id = anomaly.get("anomaly_id", anomaly.get("_id"))
    payload: dict[str, Any] = {
        "alert_key": alert_key(anomaly["symbol"], ts, rule),
        "symbol": str(anomaly["symbol"]),
        "ts": ts.isoformat(),
        "rule": str(rule),
        "severity": str(anomaly.get("severity") or "critical"),
        "anomaly_id": None if anomaly_id is None else str(anomaly_id),
    }
    payload.update({f: json_safe(anomaly[f]) for f in _OPTIONAL if anomaly.get(f) is not None})
    payload["message"] = str(anomaly.get("message") or _default_message(payload))
    merged = {**(anomaly.get("links") or {}), **(links or {})}
    if console_url and anomaly_id is not None:
        merged[CONSOLE_LINK] = console_link(console_url, anomaly_id)
    payload["links"] = json_safe(merged)
    return payload


def enqueue_alerts(
    db: Database,
    anomalies: Iterable[Mapping[str, Any]],
    *,
    channels: Sequence[str] = CHANNELS,
    severities: Sequence[str] = ("critical",),
    links: Mapping[str, str] | None = None,
    console_url: str | None = None,
    session: ClientSession | None = None,
    now: dt.datetime | None = None,
) -> EnqueueReport:
    """Enqueues one alert per (symbol, ts, rule) and channel; safe to call again and again.

    Call it in the step that records the anomalies (pass that step's ``session`` to share a
    transaction). Re-enqueueing an alert that is pending, sent or failed changes nothing.

    Args:
        db: The project database.
        anomalies: Anomaly documents (or failed-check records), see :func:`build_payload`.
        channels: Channels to alert on (``webhook``, ``slack``).
        severities: Only anomalies with these severities are enqueued.
        links: Extra links added to every payload.
        console_url: The analyst console's base URL for ``links.console`` (default
            :func:`~quant_pipelines.settings.console_base_url`: ``QP_CONSOLE_URL``, else the
            API's address).
        session: Optional pymongo session.
        now: Enqueue time (default: the clock).

    Returns:
        Counts of inserted, already present and skipped (severity-filtered) alerts.

    Raises:
        ValueError: Unknown channel, an anomaly without symbol/ts/rule, or an invalid
            ``QP_CONSOLE_URL``.
    """
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise ValueError(f"unknown alert channel(s) {unknown}; expected {list(CHANNELS)}")
    if console_url is None:
        console_url = console_base_url()
    docs, skipped = [], 0
    for anomaly in anomalies:
        if str(anomaly.get("severity") or "critical") not in severities:
            skipped += 1
            continue
        payload = build_payload(anomaly, links=links, console_url=console_url)
        for channel in dict.fromkeys(channels):
            key = idempotency_key(payload["alert_key"], channel)
            docs.append({"idempotency_key": key, "channel": channel, "payload": payload})
    report = AlertOutboxRepository(db).enqueue(docs, now=now, session=session)
    return EnqueueReport(report.inserted, report.existing, skipped)
