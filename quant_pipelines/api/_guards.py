"""Request guards of the app: trusted ``Host`` names, JSON-only bodies, and their settings.

* Trusted hosts (Starlette ``TrustedHostMiddleware``): a request whose ``Host`` is not an
  allowed name gets 400, which defeats DNS rebinding (a hostile page whose name resolves to
  127.0.0.1 still sends its own name as ``Host``).
* JSON only: a request to a state-changing method (or any request with a body) whose
  ``Content-Type`` is not ``application/json`` gets 415 before routing. The content types an
  HTML form or a no-CORS ``fetch`` can send cross-site (form-urlencoded, multipart,
  text/plain) are thereby refused, whatever the body, with or without credentials.
  The one exception is the analyst console (paths under ``/console/``): its HTML forms post
  ``application/x-www-form-urlencoded``, and only that; they are guarded by a session cookie
  (``SameSite=Strict``), a CSRF token in every form and an ``Origin`` check instead
  (``api/console``). Every other path stays JSON-only.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from quant_pipelines.api._limits import _answer

#: Hosts accepted by default: the loopback names.
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
#: Environment variable listing the allowed hosts (comma-separated).
ALLOWED_HOSTS_ENV = "QP_API_ALLOWED_HOSTS"
#: Environment variables of the per-key quotas.
MAX_ACTIVE_REQUESTS_ENV = "QP_MAX_ACTIVE_REQUESTS"
MAX_QUEUED_TRIALS_ENV = "QP_MAX_QUEUED_TRIALS"
#: Default quotas per key: queued-or-running requests, and trials they ask for in total.
DEFAULT_MAX_ACTIVE_REQUESTS = 10
DEFAULT_MAX_QUEUED_TRIALS = 20_000

_UNSAFE_METHODS = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})


def allowed_hosts(
    hosts: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The ``Host`` names to accept, as ``TrustedHostMiddleware`` patterns.

    Args:
        hosts: Explicit names (wins over the environment).
        env: The environment (default ``os.environ``); ``QP_API_ALLOWED_HOSTS`` is read.

    Returns:
        The names, lower-cased; an IPv6 literal is listed bracketed too (``[::1]``), as it
        appears in a ``Host`` header.

    Raises:
        ValueError: The list is empty.
    """
    if hosts is None:
        raw = (os.environ if env is None else env).get(ALLOWED_HOSTS_ENV, "")
        hosts = [h for h in (p.strip() for p in raw.split(",")) if h] or DEFAULT_ALLOWED_HOSTS
    out: list[str] = []
    for host in hosts:
        name = host.strip().lower()
        if not name:
            continue
        out.append(name)
        try:
            if ipaddress.ip_address(name).version == 6:
                out.append(f"[{name}]")
        except ValueError:
            pass
    if not out:
        raise ValueError("the list of allowed hosts is empty")
    return list(dict.fromkeys(out))


def env_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    """A positive integer from the environment, or ``default`` when unset.

    Raises:
        ValueError: The variable is set but not a positive integer.
    """
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {raw!r}")
    return value


def _media(content_type: bytes) -> bytes:
    return content_type.split(b";", 1)[0].strip().lower()


def _is_json(content_type: bytes) -> bool:
    return _media(content_type) == b"application/json"


#: Path prefix of the analyst console, whose HTML forms are the one non-JSON body accepted.
CONSOLE_PREFIX = "/console/"
#: The only body type the console accepts.
FORM_CONTENT_TYPE = b"application/x-www-form-urlencoded"


def is_console_path(scope: Scope) -> bool:
    """Whether the request is for the analyst console (``/console`` or below)."""
    path = scope.get("path", "")
    return path == CONSOLE_PREFIX.rstrip("/") or path.startswith(CONSOLE_PREFIX)


def is_console_form(scope: Scope) -> bool:
    """Whether the request is an HTML form post to the console (urlencoded, under /console/)."""
    if not is_console_path(scope):
        return False
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-type":
            return _media(value) == FORM_CONTENT_TYPE
    return False


class JsonOnlyMiddleware:
    """Answers 415 unless a request's body, if any, is declared ``application/json``.

    Refused: a POST/PUT/PATCH/DELETE with any ``Content-Type`` other than
    ``application/json`` (even with an empty body), and any request with a non-empty body
    (``Content-Length`` above 0 or chunked) that is not declared JSON. A bodiless POST without
    ``Content-Type`` (e.g. ``curl -X POST``) passes. Under ``/console/`` the rule is the
    same with ``application/x-www-form-urlencoded`` in place of JSON (the console's forms).

    Args:
        app: The wrapped ASGI application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type: bytes | None = None
        has_body = False
        for key, value in scope.get("headers", []):
            key = key.lower()
            if key == b"content-type":
                content_type = value
            elif key == b"content-length":
                has_body = has_body or value.strip() not in (b"0", b"")
            elif key == b"transfer-encoding":
                has_body = True
        unsafe = scope.get("method", "GET").encode() in _UNSAFE_METHODS
        declared = content_type is not None and content_type.strip() != b""
        needs_type = has_body or (unsafe and declared)
        if is_console_path(scope):
            if needs_type and (content_type is None or _media(content_type) != FORM_CONTENT_TYPE):
                detail = "console forms must be Content-Type: application/x-www-form-urlencoded"
                await _answer(send, 415, detail)
                return
        elif needs_type and (content_type is None or not _is_json(content_type)):
            await _answer(send, 415, "request bodies must be Content-Type: application/json")
            return
        await self.app(scope, receive, send)
