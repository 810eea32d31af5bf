"""Error answers no client can break: a strict JSON gate before every route, and safe handlers.

:class:`StrictJsonMiddleware` reads each request's body once (after the size limit) and refuses,
with a 422 naming the problem and the JSON path, anything :func:`parse_json_body` refuses:
invalid UTF-8, invalid JSON, nesting deeper than :data:`MAX_JSON_DEPTH`, ``NaN`` / ``Infinity``,
overflowing numbers, integers outside 64 bits, lone surrogates. What reaches FastAPI is then
plain, finite JSON. (A body not declared ``application/json`` got 415 earlier, from
:class:`~quant_pipelines.api._guards.JsonOnlyMiddleware`.)

The exception handlers make sure an error answer itself can always be encoded (the default 422
handler echoes the input, which failed on ``NaN`` or on undecodable bytes), and that an
unexpected error is a JSON 500, never a bare or dropped connection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quant_pipelines.api._guards import is_console_form
from quant_pipelines.api._json import MAX_JSON_DEPTH, BodyError, json_safe, parse_json_body

_log = logging.getLogger(__name__)


async def _answer_422(send: Send, errors: list[dict[str, Any]]) -> None:
    body = json.dumps({"detail": json_safe(errors)}, allow_nan=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class StrictJsonMiddleware:
    """Refuses, before any route runs, a request body that is not strict JSON (422).

    It must sit inside :class:`~quant_pipelines.api._limits.BodySizeLimitMiddleware`, which
    bounds what is read here. An empty body passes untouched (routes decide whether they need
    one).

    Args:
        app: The wrapped ASGI application.
        max_depth: Deepest allowed nesting of arrays and objects.
    """

    def __init__(self, app: ASGIApp, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away; nothing to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and not is_console_form(scope):  # the console's urlencoded HTML forms
            try:
                parse_json_body(body, max_depth=self.max_depth)
            except BodyError as exc:
                await _answer_422(send, exc.errors)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = json_safe(jsonable_encoder(json_safe(exc.errors())))
    return JSONResponse({"detail": errors}, status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    _log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handling(app: FastAPI, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Adds the strict JSON gate and the safe error handlers to ``app``.

    Call it before adding the body-size limit (middleware added later wraps this one).

    Args:
        app: The application.
        max_depth: Deepest allowed nesting of a JSON body.
    """
    app.add_middleware(StrictJsonMiddleware, max_depth=max_depth)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
