"""Routes of the backtest optimizer: request a study, follow it, read the leaderboard."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pymongo.database import Database

from quant_pipelines.api import _studies
from quant_pipelines.api._auth import Principal, require_optimize_write, require_read
from quant_pipelines.api._context import ApiContext, api_context, database
from quant_pipelines.api._json import document
from quant_pipelines.api.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    STRATEGY_PATTERN,
    Leaderboard,
    Objective,
    OptimizeAccepted,
    OptimizeRequest,
    OptimizeStatus,
    RankBy,
)
from quant_pipelines.marketdata import ASSET_CLASSES
from quant_pipelines.storage.requests import (
    IdempotencyConflictError,
    create_request,
    get_request,
    request_id_for_key,
)

router = APIRouter(tags=["backtests"])

MAX_LEADERBOARD = 100
MAX_TOP_TRIALS = 50

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes retries safe: the same key and body give the same request.",
    ),
]


def _error(loc: str, kind: str, msg: str, value: Any, **ctx: Any) -> dict[str, Any]:
    return {"type": kind, "loc": ("body", loc), "msg": msg, "input": value, "ctx": ctx}


def _portfolio_strategy(body: OptimizeRequest, known: list[str]) -> tuple[str | None, int]:
    """The portfolio strategy a request names (None: a single-asset study) and the fewest
    symbols it needs; ``("", 0)`` when the name is unknown."""
    from quant_pipelines.backtest.portfolio.strategies import (
        PORTFOLIO_STRATEGIES,
        SIGNAL_PREFIX,
    )

    name = body.strategy
    if name in known and not body.portfolio:
        return None, 1
    if name in known:
        name = f"{SIGNAL_PREFIX}{name}"
    found = PORTFOLIO_STRATEGIES.get(name)
    return (name, found.min_symbols) if found is not None else ("", 0)


def _check_domain(body: OptimizeRequest, ctx: ApiContext) -> tuple[list[str], str | None]:
    """Checks the strategy and the symbols against the registries and the universe.

    Returns:
        The symbols with their canonical names (a ``universe`` request: every symbol of
        that asset class), and the portfolio strategy (None for a single-asset study).

    Raises:
        RequestValidationError: Unknown strategy (listing the known ones), unknown symbols
            (naming them), duplicate symbols, or a universe too small for a cross-sectional
            portfolio strategy.
    """
    from quant_pipelines.backtest.portfolio.strategies import list_portfolio_strategies

    errors = []
    known = list(ctx.strategies())
    portfolio, min_symbols = _portfolio_strategy(body, known)
    if portfolio == "":
        every = [*known, *(s for s in list_portfolio_strategies() if s not in known)]
        msg = (
            f"unknown strategy {body.strategy!r}; known strategies (single-asset and "
            f"portfolio): {', '.join(every)}"
        )
        errors.append(_error("strategy", "unknown_strategy", msg, body.strategy, known=every))
    requested = list(body.symbols)
    if body.universe is not None:
        requested = [s.name for s in ctx.universe.by_asset_class(body.universe)]
    unknown = [s for s in requested if s not in ctx.universe]
    if unknown:
        names = list(ctx.universe.names)
        msg = f"symbols not in the universe: {', '.join(unknown)}; known: {', '.join(names)}"
        errors.append(
            _error("symbols", "unknown_symbols", msg, body.symbols, unknown=unknown, known=names)
        )
        canonical = []
    else:
        canonical = [ctx.universe.get(s).name for s in requested]
        duplicates = sorted({s for s in canonical if canonical.count(s) > 1})
        if duplicates:
            msg = f"symbols listed more than once: {', '.join(duplicates)}"
            errors.append(
                _error("symbols", "duplicate_symbols", msg, body.symbols, duplicates=duplicates)
            )
        elif portfolio and len(canonical) < min_symbols:
            where = f"universe {body.universe!r}" if body.universe else "symbols"
            msg = (
                f"{portfolio} is cross-sectional and needs at least {min_symbols} symbols; "
                f"the {where} has {len(canonical)}: {', '.join(canonical) or 'none'}"
            )
            errors.append(
                _error(
                    "universe" if body.universe else "symbols",
                    "too_few_symbols",
                    msg,
                    body.universe or body.symbols,
                    min_symbols=min_symbols,
                )
            )
    if errors:
        raise RequestValidationError(errors)
    return canonical, portfolio


def _quota(
    request: Request, db: Database, principal: Principal, n_trials: int, *, skip: bool
) -> contextlib.AbstractContextManager[None]:
    """The key's quota check around the insert (none for a replay, which writes nothing)."""
    if skip:
        return contextlib.nullcontext()
    return request.app.state.quotas.reserve(db, principal.name, n_trials)


@router.post(
    "/backtests/optimize",
    status_code=202,
    response_model=OptimizeAccepted,
    summary="Request an optimization study",
    responses={
        409: {"description": "Idempotency-Key reused with a different body"},
        413: {"description": "Body larger than 64 KiB"},
        415: {"description": "Body not declared application/json"},
        422: {"description": "Invalid body, unknown strategy or symbols"},
        429: {"description": "The key's quota of queued requests or trials is used up"},
        503: {"description": "MongoDB unreachable"},
    },
)
def request_optimization(
    body: OptimizeRequest,
    request: Request,
    response: Response,
    ctx: Annotated[ApiContext, Depends(api_context)],
    principal: Annotated[Principal, Depends(require_optimize_write)],
    idempotency_key: IdempotencyKey = None,
) -> OptimizeAccepted:
    """Records the request as ``queued``; the Dagster sensor launches (or defers) its run.

    The requester (``requested_by``) is the API key's name; the key's quotas apply (429)."""
    symbols, portfolio = _check_domain(body, ctx)
    wf = body.walk_forward_config()
    params = body.model_dump(
        mode="json", exclude={"walk_forward", "validation", "portfolio", "universe"}
    )
    params.update(
        symbols=symbols,
        walk_forward=wf.model_dump() if wf else False,
        validation=body.validation_method(),
    )
    if portfolio is not None:  # single-asset requests keep their stored shape
        params.update(portfolio=True, portfolio_strategy=portfolio, universe=body.universe)
    asset_classes = sorted({ctx.universe.get(s).asset_class for s in symbols})
    db = ctx.database()
    replay = idempotency_key is not None and get_request(db, request_id_for_key(idempotency_key))
    try:
        with _quota(request, db, principal, body.n_trials, skip=bool(replay)):
            result = create_request(
                db,
                params,
                idempotency_key=idempotency_key,
                extra={"asset_classes": asset_classes, "requested_by": principal.name},
            )
    except IdempotencyConflictError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    doc = result.document
    path = request.app.url_path_for("optimization_status", request_id=doc["request_id"])
    status_url = request.scope.get("root_path", "") + path
    response.headers["Location"] = status_url
    if not result.created:
        response.headers["Idempotent-Replayed"] = "true"
    return OptimizeAccepted(
        request_id=doc["request_id"], status_url=status_url, status=doc["status"]
    )


@router.get(
    "/backtests/optimize/{request_id}",
    name="optimization_status",
    response_model=OptimizeStatus,
    dependencies=[Depends(require_read)],
    summary="Status, progress and top trials of a request",
    responses={404: {"description": "Unknown request id"}},
)
def optimization_status(
    request_id: str,
    db: Annotated[Database, Depends(database)],
    top: Annotated[int, Query(ge=0, le=MAX_TOP_TRIALS, description="Top trials to list.")] = 5,
) -> dict[str, Any]:
    """The request's status, the Dagster run id, progress and the study's best trials."""
    doc = get_request(db, request_id)
    if doc is None:
        raise HTTPException(404, detail=f"no optimization request with id {request_id!r}")
    study = _studies.get_study(db, doc["study_name"])
    progress = {"total": doc["params"].get("n_trials")}
    progress.update({k: v for k, v in (doc.get("progress") or {}).items() if v is not None})
    if study and study.get("progress"):
        progress.update({k: v for k, v in study["progress"].items() if v is not None})
    out = document(doc)
    out.update(
        study_status=study.get("status") if study else None,
        progress=progress,
        top_trials=[document(t) for t in _studies.top_trials(db, doc["study_name"], top)]
        if top
        else [],
    )
    return out


@router.get(
    "/backtests/leaderboard",
    response_model=Leaderboard,
    dependencies=[Depends(require_read)],
    summary="Trials ranked within one objective, with overfitting statistics and promotions",
)
def leaderboard(
    db: Annotated[Database, Depends(database)],
    objective: Annotated[Objective | None, Query(description="One objective's group.")] = None,
    rank_by: Annotated[
        RankBy,
        Query(description="'holdout' is selection on the holdout and promotes nothing."),
    ] = "validation",
    strategy: Annotated[str | None, Query(pattern=STRATEGY_PATTERN)] = None,
    asset_class: Annotated[str | None, Query(pattern="^(" + "|".join(ASSET_CLASSES) + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LEADERBOARD)] = 20,
) -> dict[str, Any]:
    """Rows grouped by objective (never compared across objectives), ranked by the validation
    value by default, each with its in-sample, validation and holdout scores, DSR, the study's
    PBO and SPA p-value, and whether the gate promotes it (and why not)."""
    rows = _studies.leaderboard(
        db,
        objective=objective,
        rank_by=rank_by,
        strategy=strategy,
        asset_class=asset_class,
        limit=limit,
    )
    return {
        "objective": objective,
        "rank_by": rank_by,
        "strategy": strategy,
        "asset_class": asset_class,
        "limit": limit,
        "entries": [document(r) for r in rows],
    }


@router.get(
    "/backtests/studies/{study_name}/portfolio_backtest",
    dependencies=[Depends(require_read)],
    summary="A portfolio study's selected trial backtested: metrics, contributions, equity",
    responses={404: {"description": "Unknown study, or no portfolio_backtest attached yet"}},
)
def study_portfolio_backtest(
    study_name: Annotated[str, Path(max_length=200)],
    db: Annotated[Database, Depends(database)],
    image: Annotated[bool, Query(description="The equity PNG instead of the JSON.")] = False,
) -> Any:
    """The ``portfolio_backtest`` the leaderboard attached to a portfolio study: its metrics,
    the contribution of each symbol, the equity and the equal-weight benchmark per bar (the
    equity PNG with ``?image=true``)."""
    study = _studies.get_study(db, study_name)
    found = (study or {}).get("portfolio_backtest")
    if not found:
        raise HTTPException(
            404,
            detail=f"no portfolio_backtest for study {study_name!r} (not a portfolio "
            "study, or the leaderboard has not run since it finished)",
        )
    if image:
        return Response(content=bytes(found["png"]), media_type="image/png")
    return document({k: v for k, v in found.items() if k != "png"})
