"""Scrubbing of URLs and secrets out of error text before it is stored or logged.

A receiver may echo the request URL (in an error body, or httpx in an exception message), and
webhook URLs carry credentials: a ``?token=`` query value, a ``user:password@`` part, or, for
Slack incoming webhooks, the path itself (``/services/T…/B…/<secret>``). :func:`scrub` removes
all of them from any text, plus every literal occurrence of the configured secrets.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"
#: Literal secrets shorter than this are not replaced (a one-character "secret" would mangle
#: every message and protects nothing).
MIN_SECRET_LEN = 4

#: A query string: a ``?`` followed by non-space characters (full URL or a bare path).
_QUERY = re.compile(r"\?[^\s\"'<>`]*")
#: One ``name=value`` pair inside a query string.
_PAIR = re.compile(r"([?&;][^=&;#\s\"'<>]*=)([^&;#\s\"'<>]*)")
#: ``scheme://user:password@`` or ``scheme://token@``.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@\"'<>]+@")
#: A Slack webhook path (``/services/T…/B…/secret``, also ``/workflows/…`` and
#: ``/triggers/…``), on any host: everything after the kind is a credential.
_SLACK_PATH = re.compile(
    r"(/(?:services|workflows|triggers)/)(?:T|B|[A-Z0-9]{2})[A-Za-z0-9_\-]*(?:/[^\s\"'<>?#]*)?"
)


def _scrub_query(match: re.Match[str]) -> str:
    return _PAIR.sub(lambda m: m.group(1) + (MASK if m.group(2) else ""), match.group(0))


def url_secrets(url: str) -> list[str]:
    """The credential parts of a URL: query values, the userinfo, and a Slack webhook path.

    Args:
        url: A configured webhook URL.

    Returns:
        The strings to treat as secrets (possibly empty).
    """
    out: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    if parts.username:
        out.append(unquote(parts.username))
    if parts.password:
        out.append(unquote(parts.password))
    for pair in re.split(r"[&;]", parts.query):
        if "=" in pair:
            value = pair.split("=", 1)[1]
            out += [value, unquote(value)]
    match = _SLACK_PATH.search(parts.path)
    if match:
        tail = parts.path[match.start(1) + len(match.group(1)) :]
        out.append(tail)
        out += [seg for seg in tail.split("/") if seg]
    return out


def _variants(secret: str) -> set[str]:
    """A secret as it may appear in echoed text: raw, percent-encoded, JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret, safe="/")}
    forms |= {f.replace("/", "\\/") for f in list(forms)}
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every credential of every URL, and every given secret, replaced by ``***``.

    Replaced: each literal occurrence of ``secrets`` (also percent-encoded or JSON-escaped),
    every query value of any URL or bare path (``?token=abc`` becomes ``?token=***``), the
    userinfo of any URL, and the path of any Slack webhook URL (``/services/***``).

    Args:
        text: An error message, response body or log line.
        secrets: Configured secrets (signing secret, webhook URLs; a URL's credential parts
            are derived with :func:`url_secrets`). Empty values are ignored.

    Returns:
        The scrubbed text.
    """
    text = str(text)
    literal: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        literal |= _variants(secret)
        if "://" in secret:
            for part in url_secrets(secret):
                literal |= _variants(part)
    for secret in sorted(literal, key=len, reverse=True):  # longest first: URL before token
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _SLACK_PATH.sub(lambda m: m.group(1) + MASK, text)
    return _QUERY.sub(_scrub_query, text)


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs every record of its logger (see :func:`install_log_filter`).

    httpx logs each request's URL at INFO (``HTTP Request: POST https://…?token=…``), and
    Dagster captures those lines into its compute logs: the filter rewrites such records with
    :func:`scrub`, using every secret registered so far.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def add(self, secrets: Iterable[str | None]) -> None:
        """Registers more secrets to mask."""
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrites the record's message scrubbed; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        with self._lock:
            secrets = tuple(self._secrets)
        cleaned = scrub(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = ScrubFilter()
#: Loggers of the HTTP stack that may write a request URL.
_HTTP_LOGGERS = ("httpx", "httpcore")


def install_log_filter(secrets: Iterable[str | None] = ()) -> ScrubFilter:
    """Scrubs the httpx / httpcore log records from now on, masking ``secrets`` as well.

    Idempotent: the one shared filter is attached once to each logger; later calls only add
    secrets.

    Args:
        secrets: Secrets to mask in those records (webhook URLs, signing secret).

    Returns:
        The shared filter.
    """
    _FILTER.add(secrets)
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return _FILTER
