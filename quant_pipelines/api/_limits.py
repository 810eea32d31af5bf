"""ASGI middleware: 413 for oversized bodies before parsing, and a MongoDB deadline per request."""

from __future__ import annotations

import json
from collections.abc import Callable

import pymongo
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 64 * 1024


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Answers 413 when ``Content-Length`` or the bytes actually received exceed a limit.

    The whole body (at most ``max_bytes``) is read here and replayed to the application, so
    a chunked upload without ``Content-Length`` is measured too, and nothing downstream ever
    sees an oversized body. A malformed ``Content-Length`` gets 400.

    Args:
        app: The wrapped ASGI application.
        max_bytes: The limit (default :data:`MAX_BODY_BYTES`).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body is larger than {self.max_bytes} bytes"
        lengths = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if lengths:
            try:
                declared = {int(v) for v in lengths}
            except ValueError:
                await _answer(send, 400, "malformed Content-Length header")
                return
            if len(declared) != 1 or min(declared) < 0:
                await _answer(send, 400, "malformed Content-Length header")
                return
            if declared.pop() > self.max_bytes:
                await _answer(send, 413, too_large)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away; nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _answer(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class MongoDeadlineMiddleware:
    """Runs each request under ``pymongo.timeout(seconds())``: one deadline for all its I/O.

    With a client-wide ``timeoutMS``, pymongo waits that long (not ``serverSelectionTimeoutMS``)
    for a server; this bounds every request instead, so an outage answers 503 quickly. The
    deadline is a context variable, which FastAPI copies into the worker thread of a route.

    Args:
        app: The wrapped ASGI application.
        seconds: Returns the deadline in seconds (read per request).
    """

    def __init__(self, app: ASGIApp, seconds: Callable[[], float]) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with pymongo.timeout(self.seconds()):
            await self.app(scope, receive, send)
