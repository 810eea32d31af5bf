"""Helpers shared by the alert tests (fixtures live in conftest.py): anomalies, a receiver."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from quant_pipelines.alerts import SignatureError, verify_signature

SECRET = "test-webhook-secret"
T0 = dt.datetime(2024, 1, 3, 0, 0, tzinfo=dt.UTC)


def make_anomaly(
    i: int = 0, *, symbol: str = "AAPL", severity: str = "critical", detector: str = "iforest"
) -> dict:
    """A small anomaly document like the sentinel records."""
    ts = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC) + dt.timedelta(days=i)
    return {
        "symbol": symbol,
        "ts": ts,
        "detector": detector,
        "severity": severity,
        "score": 0.91,
        "threshold": 0.7,
        "status": "open",
        "created_at": ts + dt.timedelta(hours=8),
    }


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Polls ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class Received:
    """One request as the receiver saw it."""

    at: float  # wall clock (time.time()) on arrival
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    verified: str | None = None  # "ok", or the SignatureError reason (receiver with a secret)

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
    #: When set, every request is verified with it (``Received.verified``), and a request
    #: that fails verification is answered 401 and never processed.
    secret: str | None = None
    #: Echo the full request URL in error bodies (as some receivers and proxies do).
    echo_url: bool = False

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
        headers_in = {k.lower(): v for k, v in handler.headers.items()}
        verified = None
        if self.secret is not None:
            try:
                verify_signature(body, headers_in, self.secret)
                verified = "ok"
            except SignatureError as exc:
                verified = exc.reason
        with self.lock:
            status, headers = self.script.pop(0) if self.script else (self.default_status, {})
            if verified not in (None, "ok"):
                status, headers = 401, {}
            self.requests.append(
                Received(arrived, handler.path, headers_in, body, status, verified)
            )
            key = headers_in.get("idempotency-key")
            if 200 <= status < 300 and key and key not in self.processed:
                self.processed.append(key)
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        text = b"ok" if status < 400 else b"error"
        if status >= 400 and self.echo_url:
            host = handler.headers.get("Host", "127.0.0.1")
            text = f"error handling POST {handler.path} (http://{host}{handler.path})".encode()
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


@contextlib.contextmanager
def serve_receiver(**options: object) -> Iterator[Receiver]:
    """A live :class:`Receiver` on 127.0.0.1 (``options`` are its fields), shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    recv = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook", **options)
    server.RequestHandlerClass = _handler_for(recv)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield recv
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
