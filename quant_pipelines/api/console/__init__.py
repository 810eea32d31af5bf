"""The analyst console: server-rendered pages under ``/console`` on the API app.

An analyst signs in with an API key (exchanged for a session cookie), sees the queue of open
and acknowledged anomalies with the data-quality KPIs, opens an anomaly in its chart (the
symbol's 60 sessions around the flagged bar, its class peers, the scores against their
thresholds, the rules, the market-event verdict, the history) and acknowledges, resolves or
marks it false positive. Jinja2 templates and the stylesheet ship in the package; the pages
run no script and load nothing from elsewhere. See ``docs/runbook.md`` (Triage an alert) and
``docs/security.md`` (the cookie and CSRF model).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from quant_pipelines.api.console import _routes, _signin  # noqa: F401  (register the routes)
from quant_pipelines.api.console._forms import CSRF_FIELD, SIGNIN_CSRF_COOKIE
from quant_pipelines.api.console._http import SESSION_COOKIE, Console, router
from quant_pipelines.api.console._sessions import (
    CONSOLE_SESSIONS,
    DEFAULT_SESSION_TTL_S,
    ConsoleUser,
    SessionStore,
)

__all__ = [
    "CONSOLE_SESSIONS",
    "CSRF_FIELD",
    "DEFAULT_SESSION_TTL_S",
    "SESSION_COOKIE",
    "SIGNIN_CSRF_COOKIE",
    "ConsoleUser",
    "SessionStore",
    "install_console",
]


def install_console(
    app: FastAPI,
    *,
    session_ttl_s: float = DEFAULT_SESSION_TTL_S,
    secure_cookies: bool | None = None,
) -> None:
    """Mounts the console's routes and static files on the API app.

    Needs ``app.state.api`` (database, universe) and ``app.state.keys`` (its cache lifetime
    is reused: a revoked key's sessions end within it), as :func:`~quant_pipelines.api.create_app`
    sets them.

    Args:
        app: The API app.
        session_ttl_s: Lifetime of a session from sign-in, in seconds.
        secure_cookies: Mark cookies ``Secure``; default: when ``QP_CONSOLE_URL`` is https
            (cookies are Secure on any https request anyway).
    """
    from pathlib import Path

    from quant_pipelines.settings import console_base_url

    if secure_cookies is None:
        secure_cookies = console_base_url().startswith("https://")
    sessions = SessionStore(
        app.state.api.database, ttl_s=session_ttl_s, key_cache_ttl_s=app.state.keys.cache_ttl_s
    )
    app.state.console = Console(sessions, secure_cookies=secure_cookies)
    app.include_router(router)
    static = Path(__file__).with_name("static")
    app.mount("/console/static", StaticFiles(directory=static), name="console-static")
