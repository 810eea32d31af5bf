"""Routes of the analysts' workflow on anomalies: list, get one, acknowledge, resolve, false
positive.

Reading needs the ``read`` scope, transitions ``alerts:write``. The actor recorded in an
anomaly's history is the API key's name; an ``actor`` in the body is ignored. An anomaly is
looked up by id exactly as the console's anomaly page looks it up.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query
from pymongo.database import Database

from quant_pipelines.api._auth import Principal, require_alerts_write, require_read
from quant_pipelines.api._context import database
from quant_pipelines.api._json import document
from quant_pipelines.api.schemas import SYMBOL_PATTERN, AlertAction, AlertList
from quant_pipelines.storage.alerts import (
    AnomalyNotFoundError,
    InvalidTransitionError,
    list_anomalies,
    transition,
)
from quant_pipelines.storage.anomaly_workflow import find_anomaly

router = APIRouter(tags=["alerts"])

MAX_ALERTS = 500
AnomalyStatus = Literal["open", "acknowledged", "resolved", "false_positive"]
#: ``quality.SEVERITIES`` spelled as a type (importing the quality package costs the API ~1.6 s of
#: start-up); a test pins the two together.
Severity = Literal["info", "warning", "critical"]
AlertId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="The anomaly id (24 hex digits for an ObjectId).",
    ),
]
#: Longest id echoed back in a 404's detail.
_MAX_ECHO = 64
_GET_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key"},
    403: {"description": "The key lacks the read scope"},
    404: {"description": "No anomaly has this id, or the id is malformed"},
}
_TRANSITION_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key"},
    403: {"description": "The key lacks the alerts:write scope"},
    404: {"description": "No anomaly has this id"},
    409: {"description": "Not allowed from the anomaly's current status"},
}


@router.get(
    "/alerts",
    response_model=AlertList,
    summary="Anomalies under review",
    dependencies=[Depends(require_read)],
)
def alerts(
    db: Annotated[Database, Depends(database)],
    status: Annotated[AnomalyStatus | None, Query(description="Workflow status.")] = None,
    severity: Annotated[Severity | None, Query()] = None,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ALERTS)] = 100,
) -> dict[str, Any]:
    """Anomalies, newest bar first; a document without a status counts as ``open``."""
    rows = list_anomalies(db, status=status, severity=severity, symbol=symbol, limit=limit)
    items = []
    for row in rows:
        item = document(row)
        item.setdefault("status", "open")
        items.append(item)
    return {"count": len(items), "alerts": items}


@router.get(
    "/alerts/{alert_id}",
    summary="One anomaly, by id",
    dependencies=[Depends(require_read)],
    responses=_GET_RESPONSES,
)
def alert(
    alert_id: Annotated[
        str, Path(description="The anomaly id (24 hex digits for an ObjectId, or a string id).")
    ],
    db: Annotated[Database, Depends(database)],
) -> dict[str, Any]:
    """One anomaly, shaped like an item of ``GET /alerts`` (no status counts as ``open``).

    Any id that names no anomaly is a 404, a malformed one included (it cannot name one), so
    this route never answers 422 for its path.
    """
    doc = find_anomaly(db, alert_id)
    if doc is None:
        shown = repr(alert_id[:_MAX_ECHO]) + ("..." if len(alert_id) > _MAX_ECHO else "")
        raise HTTPException(404, detail=f"no alert with id {shown}")
    return document(doc)  # find_anomaly fills in "status" ("open" when it has none)


def _act(
    db: Database, alert_id: str, action: str, body: AlertAction | None, actor: Principal
) -> dict[str, Any]:
    body = body or AlertAction()  # body.actor is ignored: the key's name is the actor
    try:
        doc = transition(db, alert_id, action, note=body.note, actor=actor.name)
    except AnomalyNotFoundError:
        raise HTTPException(404, detail=f"no alert with id {alert_id!r}") from None
    except InvalidTransitionError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return document(doc)


OptionalAction = Annotated[AlertAction | None, Body()]
Actor = Annotated[Principal, Depends(require_alerts_write)]


@router.post(
    "/alerts/{alert_id}/ack", summary="Acknowledge an alert", responses=_TRANSITION_RESPONSES
)
def acknowledge(
    alert_id: AlertId,
    actor: Actor,
    db: Annotated[Database, Depends(database)],
    body: OptionalAction = None,
) -> dict[str, Any]:
    """open -> acknowledged; stamps ``acknowledged_at`` and appends to ``history``."""
    return _act(db, alert_id, "ack", body, actor)


@router.post(
    "/alerts/{alert_id}/resolve", summary="Resolve an alert", responses=_TRANSITION_RESPONSES
)
def resolve(
    alert_id: AlertId,
    actor: Actor,
    db: Annotated[Database, Depends(database)],
    body: OptionalAction = None,
) -> dict[str, Any]:
    """open | acknowledged -> resolved; stamps ``resolved_at``, ``closed_at`` and the time to
    resolution."""
    return _act(db, alert_id, "resolve", body, actor)


@router.post(
    "/alerts/{alert_id}/false-positive",
    summary="Mark an alert a false positive",
    responses=_TRANSITION_RESPONSES,
)
def false_positive(
    alert_id: AlertId,
    actor: Actor,
    db: Annotated[Database, Depends(database)],
    body: OptionalAction = None,
) -> dict[str, Any]:
    """open | acknowledged -> false_positive; its bar leaves the next training window."""
    return _act(db, alert_id, "false_positive", body, actor)
