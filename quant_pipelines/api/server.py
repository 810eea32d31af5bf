"""Serving the API with uvicorn (what ``quant-pipelines api`` calls)."""

from __future__ import annotations

import threading

import uvicorn

from quant_pipelines.api.app import create_app
from quant_pipelines.settings import Settings, load_settings


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    settings: Settings | None = None,
    log_level: str = "info",
    stop: threading.Event | None = None,
) -> None:
    """Serves the API until interrupted (Ctrl-C / SIGTERM) or until ``stop`` is set.

    MongoDB is configured only through :func:`quant_pipelines.settings.load_settings`
    (``MONGODB_URI``, ``MONGODB_DB``); the server starts even when MongoDB is down, and
    ``GET /healthz`` then answers 503.

    Args:
        host: Interface to bind; loopback by default. Bind a public interface only behind
            an authenticating proxy: the API has no authentication of its own.
        port: TCP port.
        settings: Settings to use instead of the environment's (tests).
        log_level: uvicorn's log level.
        stop: When given, setting this event shuts the server down gracefully (for running
            it in a thread, where signals cannot reach it).
    """
    app = create_app(settings if settings is not None else load_settings())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if stop is not None:

        def _watch() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=_watch, name="api-stop", daemon=True).start()
    server.run()
