"""What the console's routes share: the router, cookies, redirects, the signed-in user.

Pages need a session (see :mod:`._sessions`); without one, a page redirects to the sign-in form
and comes back after it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pymongo.database import Database

from quant_pipelines.api.console import _forms
from quant_pipelines.api.console._pages import render
from quant_pipelines.api.console._sessions import ConsoleUser, SessionStore

router = APIRouter(prefix="/console", include_in_schema=False)

#: The session cookie (HttpOnly, SameSite=Strict, path /console, Secure behind https).
SESSION_COOKIE = "qp_console"
QUEUE = "/console/queue"
SIGNIN = "/console/signin"
#: URL segment -> workflow action.
ACTION_SEGMENTS = {"ack": "ack", "resolve": "resolve", "false-positive": "false_positive"}
#: Confirmation shown after each action (fixed texts: nothing from the URL is echoed).
DONE = {"ack": "Acknowledged.", "resolve": "Resolved.", "false_positive": "Marked false positive."}


class Console:
    """The console's state on ``app.state.console``.

    Args:
        sessions: The session store.
        secure_cookies: Mark cookies ``Secure`` (the console is served over https).
    """

    def __init__(self, sessions: SessionStore, *, secure_cookies: bool) -> None:
        self.sessions = sessions
        self.secure_cookies = secure_cookies


def state(request: Request) -> Console:
    """The console's state."""
    return request.app.state.console


def database(request: Request) -> Database:
    """The project database (indexes ensured)."""
    return request.app.state.api.database()


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """Sets an HttpOnly, SameSite=Strict cookie on ``/console`` (Secure under https)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=state(request).secure_cookies or request.url.scheme == "https",
    )


def clear_cookie(response: Response, name: str) -> None:
    """Expires a console cookie."""
    response.delete_cookie(name, path="/console", httponly=True, samesite="strict")


def redirect(url: str) -> RedirectResponse:
    """A 303 (see other) to ``url``, never cached."""
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def here(request: Request) -> str:
    """The request's path and query (where to come back to)."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def to_signin(request: Request, *, expired: bool) -> Response:
    """Sends an anonymous visitor to the sign-in form, coming back to this page after it.

    A link opened from another site (Slack, e-mail) arrives without the SameSite=Strict
    cookie: that GET first gets a page that reloads itself from this origin, which does carry
    the cookie, and only then, if there is still no session, the sign-in form.
    """
    fetch_site = request.headers.get("sec-fetch-site", "")
    if request.method == "GET" and fetch_site == "cross-site":
        return render("bounce.html", target=here(request))
    params = {"next": here(request)} if request.method == "GET" else {}
    if expired:
        params["expired"] = "1"
    response = redirect(SIGNIN + ("?" + urlencode(params) if params else ""))
    if expired:
        clear_cookie(response, SESSION_COOKIE)
    return response


def current_user(request: Request) -> ConsoleUser | None:
    """The signed-in analyst, or None (no, unknown, expired or revoked session)."""
    return state(request).sessions.get(request.cookies.get(SESSION_COOKIE))


def page(template: str, user: ConsoleUser, *, status: int = 200, **context: Any) -> Response:
    """A page for a signed-in analyst (its forms get the session's CSRF token)."""
    return render(template, status=status, user=user, csrf=user.csrf, **context)


def error_page(user: ConsoleUser | None, status: int, title: str, message: str) -> Response:
    """The error page (404, 403 ...) with a message."""
    csrf = user.csrf if user else ""
    return render("error.html", status=status, user=user, csrf=csrf, title=title, message=message)


async def read_form(request: Request) -> dict[str, str] | None:
    """The posted form, or None when it cannot be read."""
    try:
        return _forms.parse_form(await request.body())
    except _forms.FormError:
        return None
