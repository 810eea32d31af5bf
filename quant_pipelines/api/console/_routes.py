"""The console's pages and actions: the queue, an anomaly's page, ack / resolve / false positive.

Form posts need the session's CSRF token and a same-origin browser; actions need a key with
``alerts:write`` and go through the workflow's transition rules, with the key's name as the
actor. A forbidden transition (resolving a resolved anomaly, say) answers 409 with the page and
a message, and changes nothing.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from quant_pipelines._utils.time import utc_now
from quant_pipelines.api.console import _forms
from quant_pipelines.api.console._anomaly import load_anomaly
from quant_pipelines.api.console._charts import anomaly_chart, sparkline
from quant_pipelines.api.console._http import (
    ACTION_SEGMENTS,
    DONE,
    SESSION_COOKIE,
    current_user,
    database,
    error_page,
    here,
    page,
    read_form,
    redirect,
    router,
    to_signin,
)
from quant_pipelines.api.console._kpis import kpi_strip
from quant_pipelines.api.console._queue import QueueFilters, load_queue
from quant_pipelines.api.console._sessions import ConsoleUser
from quant_pipelines.storage.anomaly_workflow import (
    ACTIONS,
    InvalidTransitionError,
    find_anomaly,
    transition,
)


@router.get("/queue")
def queue(request: Request) -> Response:
    """Open and acknowledged anomalies, filtered; counts by severity; the KPI strip."""
    user = current_user(request)
    if user is None:
        return to_signin(request, expired=SESSION_COOKIE in request.cookies)
    if not user.can_view:
        return error_page(user, 403, "Forbidden", f"The key {user.name!r} may not read anomalies.")
    db, now = database(request), utc_now()
    filters = QueueFilters.from_params(request.query_params)
    view = load_queue(db, request.app.state.api.universe, filters, now=now)
    kpis = kpi_strip(db, now=now)
    trends = {
        "per_batch": sparkline(
            kpis.daily_per_batch, title="flagged bars per batch, by day", bars=True
        ),
        "ttr": sparkline(kpis.daily_ttr_h, title="median hours to resolution, by day"),
        "fp": sparkline(kpis.daily_fp_rate, title="false-positive rate, by day"),
    }
    return page("queue.html", user, queue=view, kpis=kpis, trends=trends, here=here(request))


def _anomaly_page(
    request: Request, user: ConsoleUser, doc: dict, *, status: int = 200, error: str = ""
) -> Response:
    view = load_anomaly(database(request), request.app.state.api.universe, doc)
    done = DONE.get(request.query_params.get("done", "")) if status == 200 else None
    return page(
        "anomaly.html",
        user,
        status=status,
        view=view,
        chart=anomaly_chart(view.chart),
        error=error,
        done=done or "",
    )


@router.get("/anomalies/{anomaly_id}")
def anomaly(request: Request, anomaly_id: str) -> Response:
    """One anomaly in its chart, with its scores, rules, verdicts, history and actions."""
    user = current_user(request)
    if user is None:
        return to_signin(request, expired=SESSION_COOKIE in request.cookies)
    if not user.can_view:
        return error_page(user, 403, "Forbidden", f"The key {user.name!r} may not read anomalies.")
    doc = find_anomaly(database(request), anomaly_id)
    if doc is None:
        return error_page(user, 404, "Not found", f"No anomaly has the id {anomaly_id!r}.")
    return _anomaly_page(request, user, doc)


def _act(request: Request, user: ConsoleUser, anomaly_id: str, action: str, note: str) -> Response:
    db = database(request)
    doc = find_anomaly(db, anomaly_id)
    if doc is None:
        return error_page(user, 404, "Not found", f"No anomaly has the id {anomaly_id!r}.")
    if doc["status"] == ACTIONS[action]:
        message = f"This anomaly is already {doc['status'].replace('_', ' ')}. Nothing changed."
        return _anomaly_page(request, user, doc, status=409, error=message)
    try:
        transition(db, doc["_id"], action, note=note or None, actor=user.name)
    except InvalidTransitionError as exc:
        fresh = find_anomaly(db, anomaly_id) or doc
        return _anomaly_page(request, user, fresh, status=409, error=f"{exc}. Nothing changed.")
    return redirect(f"/console/anomalies/{quote(anomaly_id, safe='')}?done={action}")


@router.post("/anomalies/{anomaly_id}/{segment}")
async def act(request: Request, anomaly_id: str, segment: str) -> Response:
    """Acknowledge, resolve or mark false positive, with an optional note."""
    action = ACTION_SEGMENTS.get(segment)
    form = await read_form(request)
    user = await run_in_threadpool(current_user, request)
    if user is None:
        return to_signin(request, expired=SESSION_COOKIE in request.cookies)
    if action is None:
        return error_page(
            user, 404, "Not found", f"No action {segment!r}: use ack, resolve or false-positive."
        )
    if form is None:
        return error_page(user, 400, "Bad request", "The form could not be read. Nothing changed.")
    if not _forms.same_origin(request) or not _forms.tokens_match(
        user.csrf, form.get(_forms.CSRF_FIELD)
    ):
        return error_page(user, 403, "Forbidden", "Missing or invalid CSRF token. Nothing changed.")
    if not user.can_act:
        return error_page(
            user,
            403,
            "Forbidden",
            f"The key {user.name!r} is read-only: acting on anomalies needs the alerts:write "
            "scope. Nothing changed.",
        )
    note = form.get("note", "").strip()
    return await run_in_threadpool(_act, request, user, anomaly_id, action, note)
