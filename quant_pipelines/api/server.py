"""Serving the API with uvicorn (what ``quant-pipelines api`` calls), with limits on clients.

uvicorn alone bounds neither how long a client may take to send its request headers nor its
body: its keep-alive timer stops at the first byte, so a client that sends half a request line
and stalls (slowloris) holds its connection forever. :func:`serve` therefore runs uvicorn with

* the h11 protocol, whose parser refuses request heads larger than
  :data:`MAX_HEADER_BYTES` (httptools has no such bound);
* a *header deadline* (:class:`ReadDeadlineH11Protocol`): the request line and headers must
  arrive within ``read_timeout_s`` of the connection opening, or of the previous response on a
  keep-alive connection; otherwise the server answers 408 and closes the connection;
* a *body deadline* (:class:`BodyDeadlineMiddleware`): the whole body must arrive within
  ``read_timeout_s`` of the headers; otherwise 408 and the connection is closed;
* ``limit_concurrency``: past that many open connections (or running requests) uvicorn
  answers 503 at once instead of queueing, so stalled clients cannot pile up without bound.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from quant_pipelines.api.app import create_app
from quant_pipelines.settings import Settings, load_settings

#: Default time a client has to send its request headers, and then its body, in seconds.
READ_TIMEOUT_S = 15.0
#: Default bound of open connections and running requests; beyond it new requests get 503.
LIMIT_CONCURRENCY = 100
#: Idle time after which a keep-alive connection is closed, in seconds (uvicorn's default).
KEEP_ALIVE_S = 5
#: Largest request line plus headers h11 accepts (uvicorn's default); larger gets 400.
MAX_HEADER_BYTES = 16 * 1024


def _timeout_body(what: str) -> bytes:
    return json.dumps({"detail": f"request timeout: the {what} took too long to arrive"}).encode()


class ReadDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each request's headers.

    The deadline starts when the connection opens and again when a response completes on a
    kept-alive connection; it is cancelled once a request's headers are complete (uvicorn
    then starts a request cycle). When it passes, the client gets 408 and is disconnected.
    The deadline is ``config.read_timeout_s`` (set by :func:`serve`).
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.read_timeout_s: float = getattr(config, "read_timeout_s", READ_TIMEOUT_S)
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.read_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        self.logger.warning("client %s sent no complete request headers in time", self.client)
        body = _timeout_body("request headers")
        head = (
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request's headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():
            self._arm()  # waiting for the next request on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class BodyDeadlineMiddleware:
    """Answers 408 and closes the connection when a request body is not complete in time.

    The deadline runs from the start of the request (its headers are complete) until the last
    body chunk; reading the body is then cut short with ``http.disconnect`` for the app, and
    the client gets 408 with ``Connection: close`` (when no response was started).

    Args:
        app: The wrapped ASGI application.
        seconds: The deadline.
    """

    def __init__(self, app: ASGIApp, seconds: float = READ_TIMEOUT_S) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_done = False
        timed_out = False
        started = False

        async def receive_in_time() -> Message:
            nonlocal body_done, timed_out
            if body_done or timed_out:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if timed_out and not started:
                return  # the 408 below answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, receive_in_time, watched_send)
        if timed_out and not started:
            body = _timeout_body("request body")
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": 408, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    settings: Settings | None = None,
    log_level: str = "info",
    stop: threading.Event | None = None,
    read_timeout_s: float = READ_TIMEOUT_S,
    limit_concurrency: int | None = LIMIT_CONCURRENCY,
    keep_alive_s: int = KEEP_ALIVE_S,
) -> None:
    """Serves the API until interrupted (Ctrl-C / SIGTERM) or until ``stop`` is set.

    MongoDB is configured only through :func:`quant_pipelines.settings.load_settings`
    (``MONGODB_URI``, ``MONGODB_DB``); the server starts even when MongoDB is down, and
    ``GET /healthz`` then answers 503.

    Args:
        host: Interface to bind; loopback by default.
        port: TCP port.
        settings: Settings to use instead of the environment's (tests).
        log_level: uvicorn's log level.
        stop: When given, setting this event shuts the server down gracefully (for running
            it in a thread, where signals cannot reach it).
        read_timeout_s: A client has this long to send its request headers (from connecting,
            or from the previous response), and then this long for the whole body; otherwise
            408 and the connection is closed.
        limit_concurrency: Open connections plus running requests beyond which new requests
            get 503 at once (None: unbounded, not advised).
        keep_alive_s: An idle kept-alive connection is closed after this long.
    """
    if read_timeout_s <= 0:
        raise ValueError(f"read_timeout_s must be positive, got {read_timeout_s}")
    if limit_concurrency is not None and limit_concurrency < 1:
        raise ValueError(f"limit_concurrency must be at least 1, got {limit_concurrency}")
    app = create_app(settings if settings is not None else load_settings())
    config = uvicorn.Config(
        BodyDeadlineMiddleware(app, seconds=read_timeout_s),
        host=host,
        port=port,
        log_level=log_level,
        http=ReadDeadlineH11Protocol,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=keep_alive_s,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    config.read_timeout_s = read_timeout_s  # type: ignore[attr-defined]  # read by the protocol
    server = uvicorn.Server(config)
    if stop is not None:

        def _watch() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=_watch, name="api-stop", daemon=True).start()
    server.run()
