"""Rendering: the Jinja2 environment of the packaged templates, filters, security headers."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse

from quant_pipelines._utils.time import utc

#: Headers of every console page: never cached, never framed, no script, styles from the
#: package only (the charts are inline SVG with presentation attributes, no ``style``).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: Human names of the analyst actions.
ACTION_LABELS = {"ack": "Acknowledge", "resolve": "Resolve", "false_positive": "False positive"}
#: The path segment of each action (the form's URL).
ACTION_PATHS = {"ack": "ack", "resolve": "resolve", "false_positive": "false-positive"}


def _ago(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return (
                f"{seconds / size:.1f} {unit}"
                if seconds < 10 * size
                else f"{seconds // size:.0f} {unit}"
            )
    return f"{seconds:.0f} s"


def _when(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        return "–"
    value = utc(value)
    if value.hour == value.minute == value.second == 0:
        return f"{value:%Y-%m-%d}"
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _percent(value: Any, digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}f} %"


def _signed_percent(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{100 * value:+.2f} %"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("quant_pipelines.api.console", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=_ago, when=_when, number=_number, percent=_percent, signed_percent=_signed_percent
    )
    env.globals.update(action_labels=ACTION_LABELS, action_paths=ACTION_PATHS)
    return env


_ENV = _environment()


def render(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page: ``template`` rendered with ``context`` and the security headers."""
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
