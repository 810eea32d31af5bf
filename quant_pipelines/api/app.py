"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

import pymongo
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from quant_pipelines.api import _alerts, _backtests, _guards
from quant_pipelines.api._auth import KeyVerifier, require_read
from quant_pipelines.api._context import ApiContext, DbFactory, api_context
from quant_pipelines.api._errors import install_error_handling
from quant_pipelines.api._guards import (
    DEFAULT_ALLOWED_HOSTS,
    DEFAULT_MAX_ACTIVE_REQUESTS,
    DEFAULT_MAX_QUEUED_TRIALS,
    MAX_ACTIVE_REQUESTS_ENV,
    MAX_QUEUED_TRIALS_ENV,
    JsonOnlyMiddleware,
    env_int,
)
from quant_pipelines.api._limits import (
    MAX_BODY_BYTES,
    BodySizeLimitMiddleware,
    MongoDeadlineMiddleware,
)
from quant_pipelines.api._quotas import QuotaGuard, Quotas
from quant_pipelines.api.console import install_console
from quant_pipelines.api.schemas import Health
from quant_pipelines.marketdata import Universe, load_universe
from quant_pipelines.settings import Settings, load_settings

__all__ = ["DEFAULT_ALLOWED_HOSTS", "create_app"]

_log = logging.getLogger(__name__)

#: Longest a health probe waits for MongoDB, in seconds.
HEALTH_TIMEOUT_S = 3.0

_DESCRIPTION = """\
HTTP service of quant_pipelines: request Optuna optimization studies (run by Dagster outside
market hours), follow their progress, read the leaderboard, and work through data-quality
alerts. See `docs/api.md`.

Every route but `/healthz` needs `Authorization: Bearer <key>` (create keys with
`quant-pipelines api-keys create`); request bodies must be `application/json`. The analyst
console's HTML pages live under `/console/` (sign in there with a key).
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
    allowed_hosts: Sequence[str] | None = None,
    max_active_requests: int | None = None,
    max_queued_trials: int | None = None,
    key_cache_ttl_s: float = 5.0,
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
        allowed_hosts: ``Host`` names accepted (others get 400). Default: the comma-separated
            ``QP_API_ALLOWED_HOSTS``, else ``127.0.0.1``, ``localhost`` and ``::1``.
        max_active_requests: Queued or running optimization requests per key (default:
            ``QP_MAX_ACTIVE_REQUESTS``, else 10).
        max_queued_trials: Trials those requests may ask for in total, per key (default:
            ``QP_MAX_QUEUED_TRIALS``, else 20,000).
        key_cache_ttl_s: How long a validated API key is trusted without a database lookup
            (a revocation takes effect within this time; 0 disables the cache).

    Returns:
        The FastAPI app; OpenAPI docs at ``/docs``, the schema at ``/openapi.json`` (both,
        like every route but ``/healthz``, need a key with the ``read`` scope).
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

    quotas = Quotas(
        max_active_requests=max_active_requests
        or env_int(MAX_ACTIVE_REQUESTS_ENV, DEFAULT_MAX_ACTIVE_REQUESTS),
        max_queued_trials=max_queued_trials
        or env_int(MAX_QUEUED_TRIALS_ENV, DEFAULT_MAX_QUEUED_TRIALS),
    )
    app = FastAPI(
        title="quant_pipelines API",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the read scope
    )
    app.state.api = ctx
    app.state.keys = KeyVerifier(ctx.database, cache_ttl_s=key_cache_ttl_s)
    app.state.quotas = QuotaGuard(quotas)
    install_error_handling(app)  # innermost: strict JSON before any route, safe error answers
    app.add_middleware(MongoDeadlineMiddleware, seconds=ctx.request_timeout_s)
    app.add_middleware(JsonOnlyMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(  # outermost: a foreign Host gets 400 before anything else
        TrustedHostMiddleware, allowed_hosts=_guards.allowed_hosts(allowed_hosts)
    )
    app.include_router(_backtests.router)
    app.include_router(_alerts.router)
    install_console(app)  # /console: the analysts' web pages (session cookie + CSRF)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_read)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_read)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title + " - docs")

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
