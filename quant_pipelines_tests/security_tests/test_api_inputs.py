"""The HTTP API against bad clients and a flaky MongoDB: real servers, real sockets.

* Writes that MongoDB applied but answered "retry" (``failCommand`` fail points on the
  session's MongoDB-wire server, run with ``--enable-test-commands``) never make a second
  request, and the client gets its 202.
* A real uvicorn (``serve``) on a loopback port, reached with raw sockets: clients that stall
  in the headers or in the body are cut off after the read timeout, and clients beyond the
  concurrency bound get 503 instead of hanging the server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pymongo
import pytest
from pymongo import monitoring
from pymongo.database import Database
from starlette.exceptions import StarletteDeprecationWarning

from quant_pipelines.api import create_app, serve
from quant_pipelines.storage import make_client
from quant_pipelines.storage.api_keys import ADMIN, create_key
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS
from quant_pipelines.storage.embedded import free_port
from quant_pipelines.storage.requests import request_id_for_key

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its TestClient
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

URL = "/backtests/optimize"
BODY: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbols": ["AAPL", "MSFT"],
    "start": "2020-01-01",
    "end": "2022-12-31",
    "n_trials": 50,
    "walk_forward": {"n_folds": 3, "scheme": "anchored", "train_frac": 0.6, "purge": 1},
}
HOSTS = ("127.0.0.1", "localhost", "testserver")


class _Updates(monitoring.CommandListener):
    """Replies to ``update`` commands, as the driver saw them."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "update":
            self.replies.append(dict(event.reply))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if event.command_name == "update":
            self.failures.append(type(event.failure).__name__ if event.failure else "?")


@contextlib.contextmanager
def _fail_point(admin: Database, mode: Any, data: dict[str, Any]) -> Iterator[None]:
    admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})
    try:
        yield
    finally:
        admin.command({"configureFailPoint": "failCommand", "mode": "off"})


@pytest.fixture
def updates() -> _Updates:
    return _Updates()


@pytest.fixture
def api(mongo_uri: str, mongo_db: Database, updates: _Updates) -> Iterator[TestClient]:
    """The app over its own client (watched by ``updates``), with an admin key."""
    key, _ = create_key(mongo_db, "inputs-admin", [ADMIN])
    watched = make_client(mongo_uri, event_listeners=[updates])
    app = create_app(lambda: watched[mongo_db.name], allowed_hosts=HOSTS)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as test_client:
        # The key's first use records last_used_at (an update): done before any fail point.
        assert test_client.get("/backtests/leaderboard").status_code == 200
        updates.replies.clear()
        yield test_client
    watched.close()


def _requests(db: Database) -> list[dict[str, Any]]:
    return list(db[OPTIMIZATION_REQUESTS].find({}, {"_id": 0, "request_id": 1}))


_WRITE_CONCERN_ERROR = {"code": 64, "errmsg": "waiting for replication timed out"}


@pytest.mark.parametrize(
    ("labels", "times"),
    [
        (["RetryableWriteError"], 1),
        (["RetryableWriteError"], 2),
        (["RetryableWriteError"], 3),
        ([], 1),
    ],
    ids=["retryable-once", "retryable-twice", "retryable-thrice", "driver-gives-up"],
)
@pytest.mark.parametrize("key", [None, "retry-key-1"], ids=["no-key", "idempotency-key"])
def test_applied_write_answered_retry_gives_202_and_one_request(
    api: TestClient,
    mongo_client: pymongo.MongoClient,
    mongo_db: Database,
    updates,
    labels,
    times,
    key,
):
    """MongoDB applies the write, then answers with a ``writeConcernError``.

    Labelled ``RetryableWriteError``, the driver repeats the write (same transaction number)
    and the replayed reply no longer says "upserted": the request is still reported created,
    not replayed. Without the label the driver gives up and raises; the repository repeats the
    upsert itself and finds the document its first attempt wrote. Either way the client gets
    202 with the id of the one document (before: 500, and a second document on the client's
    retry).
    """
    headers = {"Idempotency-Key": key} if key else {}
    data = {
        "failCommands": ["update"],
        "writeConcernError": _WRITE_CONCERN_ERROR,
        "errorLabels": labels,
    }
    with _fail_point(mongo_client.admin, {"times": times}, data):
        answer = api.post(URL, json=BODY, headers=headers)
    assert answer.status_code == 202, answer.text
    assert "idempotent-replayed" not in answer.headers
    request_id = answer.json()["request_id"]
    if key:
        assert request_id == request_id_for_key(key)
    assert _requests(mongo_db) == [{"request_id": request_id}]
    injected = [r for r in updates.replies if "writeConcernError" in r]
    assert len(injected) == times, "the fail point must have answered that many writes"
    assert updates.replies[0].get("upserted"), "the first attempt was applied despite the error"
    assert len(updates.replies) == times + 1, "then one clean attempt, which found it"
    status = api.get(answer.json()["status_url"])
    assert status.status_code == 200
    assert status.json()["status"] == "queued"


def test_dropped_connection_before_the_write_gives_one_request(
    api: TestClient, mongo_client: pymongo.MongoClient, mongo_db: Database, updates
):
    """``closeConnection``: the write never ran; the driver's retry makes exactly one."""
    data = {"failCommands": ["update"], "closeConnection": True}
    with _fail_point(mongo_client.admin, {"times": 1}, data):
        answer = api.post(URL, json=BODY)
    assert answer.status_code == 202, answer.text
    assert updates.failures, "the fail point must have cut one update"
    assert _requests(mongo_db) == [{"request_id": answer.json()["request_id"]}]


def test_client_side_retry_needs_an_idempotency_key(api: TestClient, mongo_db: Database):
    """What a client that repeats a POST (say after its own timeout) gets.

    Without a key the server cannot tell a repeat from a new request with the same body (both
    are legitimate), so it records two; with a key the repeat is answered with the first
    request (``Idempotent-Replayed: true``) and nothing new is written.
    """
    first = api.post(URL, json=BODY)
    second = api.post(URL, json=BODY)
    assert first.status_code == second.status_code == 202
    assert first.json()["request_id"] != second.json()["request_id"]
    keyed = [api.post(URL, json=BODY, headers={"Idempotency-Key": "k-1"}) for _ in range(2)]
    assert keyed[0].json() == keyed[1].json()
    assert keyed[1].headers["idempotent-replayed"] == "true"
    assert len(_requests(mongo_db)) == 3


# --- A real server on loopback, reached with raw sockets -------------------------------------

READ_TIMEOUT_S = 1.0
LIMIT = 4


@pytest.fixture
def live(request: pytest.FixtureRequest, mongo_env: Database) -> Iterator[tuple[int, str]]:
    """``serve`` in a thread (read timeout 1 s unless parametrized, concurrency bound 4).

    Yields:
        Its port and an admin key.
    """
    read_timeout_s = getattr(request, "param", READ_TIMEOUT_S)
    key, _ = create_key(mongo_env, "live-admin", [ADMIN])
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(
        target=serve,
        kwargs={
            "host": "127.0.0.1",
            "port": port,
            "log_level": "warning",
            "stop": stop,
            "read_timeout_s": read_timeout_s,
            "limit_concurrency": LIMIT,
        },
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
    try:
        yield port, key
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_response(sock: socket.socket) -> bytes:
    """One complete HTTP response on a kept-alive connection: its head, then Content-Length
    bytes of body (a single ``recv`` may return the head without the body)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {raw!r}"
        raw += chunk
    head, body = raw.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-body: {raw!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def _read_until_closed(sock: socket.socket, limit_s: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    started = time.monotonic()
    data = b""
    while time.monotonic() - started < limit_s:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def _status(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:100]
    return int(raw.split(b" ", 2)[1])


def _json_body(raw: bytes) -> Any:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def _head(port: int, key: str, length: int) -> bytes:
    return (
        f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /backtests/optimize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"],
    ids=["nothing", "half-the-headers"],
)
def test_client_stalling_in_the_headers_is_cut_off(live, sent):
    port, _ = live
    with _connect(port) as sock:
        sock.sendall(sent)
        raw, elapsed = _read_until_closed(sock)
    assert _status(raw) == 408
    assert "headers" in _json_body(raw)["detail"]
    assert READ_TIMEOUT_S * 0.8 <= elapsed < READ_TIMEOUT_S + 3


def test_header_deadline_is_total_not_per_byte(live):
    """A slowloris client sending a header byte every 0.2 s is still cut off after ~1 s."""
    port, _ = live
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with _connect(port) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > READ_TIMEOUT_S + 3:
                    break
        raw, _ = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert _status(raw) == 408
    assert elapsed < READ_TIMEOUT_S + 3


def test_client_stalling_in_the_body_is_cut_off(live, mongo_env: Database):
    port, key = live
    body = json.dumps(BODY).encode()
    with _connect(port) as sock:
        sock.sendall(_head(port, key, len(body)) + body[:20])
        raw, elapsed = _read_until_closed(sock)
    assert _status(raw) == 408
    assert b"connection: close" in raw.lower()
    assert "body" in _json_body(raw)["detail"]
    assert READ_TIMEOUT_S * 0.8 <= elapsed < READ_TIMEOUT_S + 3
    assert _requests(mongo_env) == []


def test_a_prompt_client_on_the_same_server_is_served(live, mongo_env: Database):
    """The limits do not get in the way of a normal request (keep-alive reuse included)."""
    port, key = live
    body = json.dumps(BODY).encode()
    with _connect(port) as sock:
        for _ in range(2):
            sock.sendall(_head(port, key, len(body)) + body)
            raw = _read_response(sock)
            assert _status(raw) == 202, raw
    assert len(_requests(mongo_env)) == 2


@pytest.mark.parametrize("live", [3.0], indirect=True)  # room for a loaded machine
def test_clients_beyond_the_concurrency_bound_get_503(live):
    port, _ = live
    stalled = [_connect(port) for _ in range(LIMIT)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        time.sleep(0.2)
        started = time.monotonic()
        with _connect(port) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            raw, _ = _read_until_closed(extra)
        assert _status(raw) == 503
        assert time.monotonic() - started < 2.0, "answered at once, not after the stall"
        for sock in stalled:  # the stalled ones are cut off by the header deadline
            assert _status(_read_until_closed(sock)[0]) == 408
    finally:
        for sock in stalled:
            sock.close()
    answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5.0)
    assert answer.status_code == 200, "the server recovers once the stalled clients are gone"


def test_oversized_request_head_is_refused(live):
    port, _ = live
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000)
        raw, elapsed = _read_until_closed(sock)
    assert 400 <= _status(raw) < 500
    assert elapsed < READ_TIMEOUT_S, "refused for its size, not for its slowness"


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b'{"strategy": NaN}', "non_finite_number"),
        (b'{"walk_forward": {"train_frac": 1e400}}', "number_out_of_range"),
        (b'{"strategy": "\xff\xfe"}', "invalid_utf8"),
        (b"[" * 20_000 + b"]" * 20_000, "json_too_deep"),
        (b'{"strategy": "sma_', "json_invalid"),
    ],
    ids=["nan", "1e400", "invalid-utf8", "20k-deep", "truncated"],
)
def test_bad_bodies_over_real_http_get_a_named_4xx(live, mongo_env: Database, payload, kind):
    """Over a real connection: a complete JSON answer, then the connection stays usable."""
    port, key = live
    with _connect(port) as sock:
        sock.sendall(_head(port, key, len(payload)) + payload)
        raw = _read_response(sock)
        assert _status(raw) == 422, raw
        assert [e["type"] for e in _json_body(raw)["detail"]] == [kind]
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _status(_read_response(sock)) == 200
    assert _requests(mongo_env) == []
