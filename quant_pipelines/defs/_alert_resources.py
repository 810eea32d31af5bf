"""Alert transports as Dagster resources: the signed webhook and Slack (bot or webhook)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_slack import SlackResource
from slack_sdk.errors import SlackApiError, SlackClientError

from quant_pipelines.alerts._scrub import scrub
from quant_pipelines.alerts._slack import slack_message
from quant_pipelines.alerts.transports import (
    SendResult,
    SlackTransport,
    Transport,
    WebhookTransport,
)


class WebhookResource(dg.ConfigurableResource):
    """The signed generic webhook: ``ALERT_WEBHOOK_URL`` and ``ALERT_WEBHOOK_SECRET``.

    Both are empty when unset: the channel is then disabled (its alerts stay pending).
    """

    url: str = ""
    secret: str = ""

    @property
    def enabled(self) -> bool:
        """A URL and a signing secret are both configured (unsigned alerts are never sent)."""
        return bool(self.url and self.secret)

    def transport(self) -> WebhookTransport | None:
        """The webhook transport, or None when the channel is disabled."""
        return WebhookTransport(self.url, self.secret) if self.enabled else None


class SlackBotTransport:
    """Posts an alert with the Slack Web API (``chat.postMessage``) through dagster-slack.

    Implements the alerts package's ``Transport`` protocol; errors never carry the token.
    """

    channel = "slack"

    def __init__(self, slack: SlackResource, slack_channel: str) -> None:
        self._client = slack.get_client()
        self._slack_channel = slack_channel
        self._secrets = (slack.token,)

    def __repr__(self) -> str:
        return f"SlackBotTransport(channel={self._slack_channel!r})"

    def send(self, payload: Mapping[str, Any], *, idempotency_key: str) -> SendResult:
        """Posts the Slack message built from ``payload``; the key goes in its metadata."""
        message = slack_message(payload)
        try:
            self._client.chat_postMessage(
                channel=self._slack_channel,
                text=message["text"],
                blocks=json.dumps(message["blocks"]),
                metadata={"event_type": "alert", "event_payload": {"key": idempotency_key}},
            )
        except SlackApiError as exc:
            code = exc.response.status_code if exc.response is not None else None
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            retryable = code in (429, 500, 502, 503, 504) or code is None
            retry_after = exc.response.headers.get("Retry-After") if code == 429 else None
            return SendResult(
                ok=False,
                status_code=code,
                retry_after=float(retry_after) if retry_after else None,
                error=scrub(f"Slack API error: {error or code}", self._secrets)[:300],
                permanent=not retryable,
            )
        except (SlackClientError, OSError) as exc:
            return SendResult(ok=False, error=scrub(type(exc).__name__, self._secrets)[:300])
        return SendResult(ok=True, status_code=200)


class AlertTransportsResource(dg.ConfigurableResource):
    """Every enabled alert channel, for the outbox relay: ``transports()``.

    Slack goes through the bot (``dagster_slack.SlackResource`` with ``SLACK_BOT_TOKEN``,
    posting to ``slack_channel``) when its token is not empty, else through the incoming webhook
    ``SLACK_WEBHOOK_URL``; with neither, the Slack channel is disabled.
    """

    webhook: WebhookResource
    slack: SlackResource
    slack_channel: str = "#data-quality"
    slack_webhook_url: str = ""

    def transports(self) -> list[Transport]:
        """The transport objects of the enabled channels (webhook, then Slack)."""
        found: list[Transport] = []
        webhook = self.webhook.transport()
        if webhook is not None:
            found.append(webhook)
        if self.slack.token:
            found.append(SlackBotTransport(self.slack, self.slack_channel))
        elif self.slack_webhook_url:
            found.append(SlackTransport(self.slack_webhook_url))
        return found

    def by_channel(self) -> dict[str, Transport]:
        """The enabled transports keyed by channel, as ``transports_from_settings`` returns."""
        return {t.channel: t for t in self.transports()}
