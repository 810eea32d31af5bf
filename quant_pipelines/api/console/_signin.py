"""The console's sign-in and sign-out: an API key exchanged for a session cookie.

The key is checked like a bearer key (hash lookup, not revoked) and must have the ``read`` or
the ``alerts:write`` scope; it is never stored, put in the cookie or shown again. Both forms are
CSRF-checked (a double-submit token before the session exists, the session's token after).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from quant_pipelines.api.console import _forms
from quant_pipelines.api.console._http import (
    QUEUE,
    SESSION_COOKIE,
    SIGNIN,
    clear_cookie,
    current_user,
    database,
    error_page,
    read_form,
    redirect,
    router,
    set_cookie,
    state,
)
from quant_pipelines.api.console._pages import render
from quant_pipelines.storage.api_keys import ALERTS_WRITE, READ, find_key


@router.get("")
@router.get("/")
def home() -> Response:
    """The console's entry: the queue."""
    return redirect(QUEUE)


@router.get("/signin")
def signin_form(request: Request) -> Response:
    """The sign-in form (an API key), with its double-submit CSRF token."""
    if current_user(request) is not None:
        return redirect(_forms.safe_next(request.query_params.get("next"), QUEUE))
    token = _forms.new_token()
    notes = []
    if request.query_params.get("expired"):
        notes.append("Your session expired or was ended. Sign in again.")
    if request.query_params.get("signed_out"):
        notes.append("Signed out.")
    response = render(
        "signin.html",
        user=None,
        csrf=token,
        next=_forms.safe_next(request.query_params.get("next"), QUEUE),
        notes=notes,
        error="",
    )
    set_cookie(request, response, _forms.SIGNIN_CSRF_COOKIE, token, 3600)
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Exchanges an API key for a session cookie; the key is never stored or shown again."""
    form = await read_form(request)
    expected = request.cookies.get(_forms.SIGNIN_CSRF_COOKIE)
    if form is None:
        return error_page(None, 400, "Bad request", "The form could not be read. Nothing changed.")
    if not _forms.same_origin(request) or not _forms.tokens_match(
        expected, form.get(_forms.CSRF_FIELD)
    ):
        return error_page(
            None,
            403,
            "Form expired",
            "The sign-in form expired or did not come from this site. "
            "Reload the sign-in page and try again.",
        )
    target = _forms.safe_next(form.get("next"), QUEUE)
    raw = form.get("api_key", "").strip()
    key = await run_in_threadpool(find_key, database(request), raw) if raw else None
    error = ""
    if key is None or key.revoked:
        error = "Invalid or revoked API key."
    elif not (key.allows(READ) or key.allows(ALERTS_WRITE)):
        error = f"The key {key.name!r} has neither the read nor the alerts:write scope."
    if error:
        token = _forms.new_token()
        response = render(
            "signin.html",
            status=401 if key is None or key.revoked else 403,
            user=None,
            csrf=token,
            next=target,
            notes=[],
            error=error,
        )
        set_cookie(request, response, _forms.SIGNIN_CSRF_COOKIE, token, 3600)
        return response
    token, _ = await run_in_threadpool(state(request).sessions.create, key)
    response = redirect(target)
    set_cookie(request, response, SESSION_COOKIE, token, int(state(request).sessions.ttl_s))
    clear_cookie(response, _forms.SIGNIN_CSRF_COOKIE)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    """Ends the session (CSRF-checked) and clears the cookie."""
    form = await read_form(request)
    user = await run_in_threadpool(current_user, request)
    if user is not None:
        if (
            form is None
            or not _forms.same_origin(request)
            or not _forms.tokens_match(user.csrf, form.get(_forms.CSRF_FIELD))
        ):
            return error_page(
                user, 403, "Forbidden", "Missing or invalid CSRF token. Still signed in."
            )
        await run_in_threadpool(state(request).sessions.end, request.cookies.get(SESSION_COOKIE))
    response = redirect(SIGNIN + "?signed_out=1")
    clear_cookie(response, SESSION_COOKIE)
    return response
