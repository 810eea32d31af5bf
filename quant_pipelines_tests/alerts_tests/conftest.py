"""A real HTTP receiver on loopback with scriptable responses, and alert fixtures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    """One request as the receiver saw it."""

    at: float  # wall clock (time.time()) on arrival
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A ThreadingHTTPServer that answers from a script, then with ``default_status``.

    Like a well-behaved webhook consumer, it processes each ``Idempotency-Key`` once:
    ``processed`` lists the keys of accepted (2xx) requests, without repeats.
    """

    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default_status: int = 200
    requests: list[Received] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay_s: float = 0.0

    def respond_with(self, *responses: int | tuple[int, dict[str, str]]) -> None:
        """Queues the next responses: a status, or (status, headers)."""
        with self.lock:
            for r in responses:
                self.script.append(r if isinstance(r, tuple) else (r, {}))

    def keys(self) -> list[str | None]:
        with self.lock:
            return [r.key for r in self.requests]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        arrived = time.time()
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            status, headers = self.script.pop(0) if self.script else (self.default_status, {})
            headers_in = {k.lower(): v for k, v in handler.headers.items()}
            self.requests.append(Received(arrived, handler.path, headers_in, body, status))
            key = headers_in.get("idempotency-key")
            if 200 <= status < 300 and key and key not in self.processed:
                self.processed.append(key)
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        text = b"ok" if status < 400 else b"error"
        handler.send_header("Content-Length", str(len(text)))
        handler.end_headers()
        handler.wfile.write(text)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            receiver._answer(self)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A live HTTP receiver on 127.0.0.1 (a fresh one per test)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    server.daemon_threads = True
    recv = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    server.RequestHandlerClass = _handler_for(recv)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield recv
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
