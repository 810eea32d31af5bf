"""HTTP API of quant_pipelines (FastAPI): optimization requests, leaderboard, alerts, health.

May import fastapi, pydantic, uvicorn, storage, settings, backtest and marketdata; never
dagster or defs. Routes are documented in ``docs/api.md`` and served at ``/docs``. Every route
but ``/healthz`` needs a scoped bearer API key (``_auth.py``, ``storage/api_keys.py``).
"""

from __future__ import annotations

from quant_pipelines.api._limits import MAX_BODY_BYTES, BodySizeLimitMiddleware
from quant_pipelines.api.app import create_app
from quant_pipelines.api.schemas import (
    OBJECTIVES,
    SAMPLERS,
    AlertAction,
    OptimizeAccepted,
    OptimizeRequest,
    OptimizeStatus,
    WalkForwardConfig,
)
from quant_pipelines.api.server import serve

__all__ = [
    "MAX_BODY_BYTES",
    "OBJECTIVES",
    "SAMPLERS",
    "AlertAction",
    "BodySizeLimitMiddleware",
    "OptimizeAccepted",
    "OptimizeRequest",
    "OptimizeStatus",
    "WalkForwardConfig",
    "create_app",
    "serve",
]
