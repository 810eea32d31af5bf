"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

import pymongo
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, PyMongoError

from quant_pipelines.api import _alerts, _backtests
from quant_pipelines.api._context import ApiContext, DbFactory, api_context
from quant_pipelines.api._limits import (
    MAX_BODY_BYTES,
    BodySizeLimitMiddleware,
    MongoDeadlineMiddleware,
)
from quant_pipelines.api.schemas import Health
from quant_pipelines.marketdata import Universe, load_universe
from quant_pipelines.settings import Settings, load_settings

_log = logging.getLogger(__name__)

#: Longest a health probe waits for MongoDB, in seconds.
HEALTH_TIMEOUT_S = 3.0

_DESCRIPTION = """\
HTTP service of quant_pipelines: request Optuna optimization studies (run by Dagster outside
market hours), follow their progress, read the leaderboard, and work through data-quality
alerts. See `docs/api.md`.
"""


def _is_unavailable(exc: PyMongoError) -> bool:
    return isinstance(exc, ConnectionFailure) or bool(getattr(exc, "timeout", False))


def create_app(
    source: Settings | DbFactory | None = None,
    *,
    universe: Universe | None = None,
    strategies: Callable[[], Sequence[str]] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    request_timeout_s: float | None = None,
) -> FastAPI:
    """Builds the API application.

    Args:
        source: Settings to connect with (the app builds and closes its own client), or a
            callable returning the project ``Database``. Default: :func:`load_settings`.
        universe: The symbols a request may name (default: the packaged universe).
        strategies: Returns the registered strategy names (default: the backtest registry).
        max_body_bytes: Larger request bodies get 413.
        request_timeout_s: Deadline of the MongoDB work of one request; past it the answer is
            503 (default: the client's server selection timeout, 5 s unless configured).

    Returns:
        The FastAPI app; OpenAPI docs at ``/docs``, the schema at ``/openapi.json``.
    """
    if strategies is None:
        from quant_pipelines.backtest import list_strategies

        strategies = list_strategies
    ctx = ApiContext(
        load_settings() if source is None else source,
        universe=universe if universe is not None else load_universe(),
        strategies=strategies,
        request_timeout_s=request_timeout_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(
        title="quant_pipelines API",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.api = ctx
    app.add_middleware(MongoDeadlineMiddleware, seconds=ctx.request_timeout_s)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)  # outermost
    app.include_router(_backtests.router)
    app.include_router(_alerts.router)

    @app.exception_handler(PyMongoError)
    async def _mongo_error(request: Request, exc: PyMongoError) -> JSONResponse:
        if _is_unavailable(exc):
            return JSONResponse({"detail": ctx.describe_failure(exc)}, status_code=503)
        _log.error("MongoDB error on %s %s: %s", request.method, request.url.path, type(exc))
        return JSONResponse({"detail": f"database error ({type(exc).__name__})"}, 500)

    @app.get(
        "/healthz",
        response_model=Health,
        tags=["health"],
        responses={503: {"model": Health, "description": "MongoDB unreachable"}},
    )
    def healthz(api: Annotated[ApiContext, Depends(api_context)]) -> JSONResponse:
        """Pings MongoDB: 200 when it answers, 503 naming the host (never a password)."""
        try:
            with pymongo.timeout(HEALTH_TIMEOUT_S):
                api.raw_database().command("ping")
        except PyMongoError as exc:
            body = Health(
                status="unavailable", mongodb=api.hosts(), detail=api.describe_failure(exc)
            )
            return JSONResponse(body.model_dump(), status_code=503)
        return JSONResponse(Health(status="ok", mongodb=api.hosts()).model_dump())

    return app
