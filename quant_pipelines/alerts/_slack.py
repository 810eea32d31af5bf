"""Slack message formatting (Block Kit) for an alert payload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def _escape(text: Any) -> str:
    """Escapes the three characters Slack's mrkdwn reserves."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link_target(url: Any) -> str:
    """A URL made safe inside Slack's ``<url|label>``: ``|`` and ``>`` percent-encoded."""
    return _escape(str(url).replace("|", "%7C").replace(">", "%3E"))


def slack_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The incoming-webhook body ``{"text": ..., "blocks": [...]}`` for one alert.

    ``text`` is the plain fallback shown in notifications; ``blocks`` holds a header line,
    the key fields, the link to the anomaly's console page (``links.console``, where the
    analyst acknowledges, resolves or marks it false positive) and the other links.
    """
    severity = str(payload.get("severity", ""))
    text = f"{_EMOJI.get(severity, '')} {payload.get('message', '')}".strip()
    fields = [
        f"*Symbol*\n{_escape(payload.get('symbol'))}",
        f"*Bar (UTC)*\n{_escape(payload.get('ts'))}",
        f"*Rule*\n{_escape(payload.get('rule'))}",
        f"*Severity*\n{_escape(severity)}",
    ]
    for name in ("score", "threshold"):
        value = payload.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fields.append(f"*{name.title()}*\n{value:.4g}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(text)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    links = dict(payload.get("links") or {})
    console = links.pop("console", None)
    if console:
        text_link = f"<{_link_target(console)}|Open in the analyst console>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text_link}})
    if links:
        parts = [f"<{_link_target(url)}|{_escape(name)}>" for name, url in links.items()]
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}
        )
    context = f"anomaly `{payload.get('anomaly_id')}` · key `{payload.get('alert_key', '')[:12]}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": text, "blocks": blocks}
