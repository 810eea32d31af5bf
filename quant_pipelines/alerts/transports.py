"""HTTP transports: a signed generic webhook and a Slack incoming webhook (httpx, with timeouts).

A transport sends one payload and reports the outcome as a :class:`SendResult`; it never
raises for HTTP or network errors, and its errors never contain a URL credential or secret
(see :mod:`._scrub`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from quant_pipelines._utils.time import utc
from quant_pipelines.alerts._scrub import install_log_filter, scrub
from quant_pipelines.alerts._slack import slack_message
from quant_pipelines.alerts.signing import IDEMPOTENCY_HEADER, signature_headers
from quant_pipelines.settings import Secret, Settings

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: 4xx statuses that are worth retrying; any other 4xx is permanent (a retry cannot help).
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_USER_AGENT = "quant-pipelines-alerts/1"


@dataclass(frozen=True)
class SendResult:
    """The outcome of one send.

    Attributes:
        ok: The receiver accepted the alert (2xx).
        status_code: HTTP status, or None when no response arrived.
        retry_after: Seconds the receiver asked us to wait (``Retry-After``), if any.
        error: A short description without URLs or secrets; None when ``ok``.
        permanent: Retrying cannot help (e.g. 400, 403, 404, 410).
    """

    ok: bool
    status_code: int | None = None
    retry_after: float | None = None
    error: str | None = None
    permanent: bool = False


@runtime_checkable
class Transport(Protocol):
    """Delivers one alert payload on one channel."""

    channel: str

    def send(self, payload: Mapping[str, Any], *, idempotency_key: str) -> SendResult:
        """Sends ``payload``; the same ``idempotency_key`` is sent on every retry."""
        ...


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Returns:
        A non-negative number of seconds, or None when absent or unparseable.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (utc(when) - (now or dt.datetime.now(dt.UTC))).total_seconds())


class _HttpTransport:
    """Shared httpx plumbing: one pooled client, explicit timeouts, scrubbed errors."""

    channel = ""

    def __init__(self, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> None:
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._secrets: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        """``text`` without this transport's secrets nor any URL credential, at most 300 chars.

        Scrubbing runs on the whole text before it is cut, so a secret is never left half
        masked at the cut.
        """
        return scrub(text, self._secrets)[:300]

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        sent = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers}
        try:
            response = self._client.post(url, content=body, headers=sent)
        except httpx.HTTPError as exc:
            return SendResult(ok=False, error=self.scrub(f"{type(exc).__name__}: {exc}"))
        code = response.status_code
        if 200 <= code < 300:
            return SendResult(ok=True, status_code=code)
        retry_after = None
        if code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        text = self.scrub(f"HTTP {code}: {response.text[:4000]}")
        permanent = 400 <= code < 500 and code not in _RETRYABLE_4XX
        return SendResult(False, code, retry_after, text, permanent)

    def close(self) -> None:
        """Closes the connection pool."""
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WebhookTransport(_HttpTransport):
    """POSTs the payload as JSON, signed with HMAC-SHA256 (see :mod:`.signing`)."""

    channel = "webhook"

    def __init__(
        self, url: str, secret: str | Secret, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT
    ) -> None:
        """Args:
        url: The receiver's URL.
        secret: Shared HMAC secret (a :class:`Secret` or a plain string).
        timeout: httpx timeout.

        Raises:
            ValueError: ``url`` or ``secret`` is empty (unsigned webhooks are never sent).
        """
        if not url:
            raise ValueError("webhook URL is empty")
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        if not self._secret:
            raise ValueError("webhook secret is empty; set ALERT_WEBHOOK_SECRET")
        super().__init__(timeout=timeout)
        self._url = url
        self._secrets = (self._secret.get(), url)  # a URL may carry a token: see scrub
        install_log_filter(self._secrets)  # httpx logs every request URL at INFO

    def __repr__(self) -> str:
        return f"WebhookTransport(url={self._url!r}, secret={self._secret!r})"

    def send(self, payload: Mapping[str, Any], *, idempotency_key: str) -> SendResult:
        """Sends ``payload`` with timestamp, idempotency-key and signature (over all three)."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers = signature_headers(body, self._secret, idempotency_key=idempotency_key)
        return self._post(self._url, body, headers)


class SlackTransport(_HttpTransport):
    """Posts ``{"text", "blocks"}`` to a Slack incoming webhook (its URL is a secret)."""

    channel = "slack"

    def __init__(
        self, webhook_url: str | Secret, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT
    ) -> None:
        self._url = webhook_url if isinstance(webhook_url, Secret) else Secret(webhook_url)
        if not self._url:
            raise ValueError("Slack webhook URL is empty; set SLACK_WEBHOOK_URL")
        super().__init__(timeout=timeout)
        self._secrets = (self._url.get(),)
        install_log_filter(self._secrets)  # httpx logs every request URL at INFO

    def __repr__(self) -> str:
        return f"SlackTransport(webhook_url={self._url!r})"

    def send(self, payload: Mapping[str, Any], *, idempotency_key: str) -> SendResult:
        """Sends the Slack message built from ``payload``."""
        body = json.dumps(slack_message(payload), separators=(",", ":")).encode()
        return self._post(self._url.get(), body, {IDEMPOTENCY_HEADER: idempotency_key})


def transports_from_settings(
    settings: Settings, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT
) -> dict[str, Transport]:
    """The enabled transports, by channel; a channel without configuration is disabled.

    ``ALERT_WEBHOOK_URL`` with ``ALERT_WEBHOOK_SECRET`` enables ``webhook`` (a URL without a
    secret is refused: unsigned alerts are never sent); ``SLACK_WEBHOOK_URL`` enables
    ``slack``. Disabled channels are logged; their alerts stay pending in the outbox.
    """
    transports: dict[str, Transport] = {}
    if not settings.alert_webhook_url:
        logger.warning("alert channel 'webhook' disabled: ALERT_WEBHOOK_URL is not set")
    elif not settings.alert_webhook_secret:
        logger.error("alert channel 'webhook' disabled: ALERT_WEBHOOK_SECRET is not set")
    else:
        transports["webhook"] = WebhookTransport(
            settings.alert_webhook_url, settings.alert_webhook_secret, timeout=timeout
        )
    if settings.slack_webhook_url:
        transports["slack"] = SlackTransport(settings.slack_webhook_url, timeout=timeout)
    else:
        logger.warning("alert channel 'slack' disabled: SLACK_WEBHOOK_URL is not set")
    return transports
