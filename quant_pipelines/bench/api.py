"""API latency with authentication, against the same routes with authentication bypassed.

Both apps run in uvicorn on loopback over the same MongoDB database; 500 GETs at concurrency 20
over keep-alive connections, measured per request on the client. The reference app overrides
the ``read`` dependency with a fixed principal (FastAPI's ``dependency_overrides``), so the two
differ by the key check alone: bearer parsing, hashing, the cached lookup.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from quant_pipelines.bench._report import Figure
from quant_pipelines.storage import EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port

ROUTES = ("/alerts?limit=5", "/backtests/leaderboard")
"""Authenticated GET routes that read MongoDB."""


def _serve(app: object) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark API did not start")
        time.sleep(0.02)
    return base, server, thread


async def _latencies(base: str, headers: dict[str, str], n: int, concurrency: int) -> list[float]:
    out: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:
        queue = list(range(n))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                start = time.perf_counter()
                reply = await http.get(ROUTES[i % len(ROUTES)])
                out.append(time.perf_counter() - start)
                if reply.status_code != 200:
                    raise RuntimeError(f"GET {ROUTES[i % len(ROUTES)]}: {reply.status_code}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run(*, quick: bool = False) -> list[Figure]:
    """Measures p50 / p99 of authenticated GETs against the same routes without auth."""
    from quant_pipelines.api import create_app
    from quant_pipelines.api._auth import Principal, require_read
    from quant_pipelines.storage.api_keys import READ, create_key

    n, concurrency = (200, 10) if quick else (500, 20)
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
        mongo.start()
        client = make_client(mongo.uri)
        try:
            db = client["bench_api"]
            ensure_indexes(db)
            key, _ = create_key(db, "bench-reader", [READ])
            authed = create_app(lambda: db)
            open_app = create_app(lambda: db)
            fixed = Principal(name="bench", scopes=(READ,), key_id="bench")
            open_app.dependency_overrides[require_read] = lambda: fixed
            results = {}
            for name, app, headers in (
                ("open", open_app, {}),
                ("auth", authed, {"Authorization": f"Bearer {key}"}),
            ):
                base, server, thread = _serve(app)
                try:
                    asyncio.run(_latencies(base, headers, 50, concurrency))  # warm-up
                    results[name] = asyncio.run(_latencies(base, headers, n, concurrency))
                finally:
                    server.should_exit = True
                    thread.join(timeout=10)
        finally:
            client.close()
            mongo.stop()
    ms = {k: (1e3 * _pct(v, 50), 1e3 * _pct(v, 99)) for k, v in results.items()}
    what = f"{n} GETs at concurrency {concurrency}"
    return [
        Figure(
            "api",
            f"authenticated GET p50 latency ({what})",
            ms["auth"][0],
            "ms",
            "same routes, auth bypassed, same run",
            ms["open"][0],
            goal=1 / 1.2,
            higher_is_better=False,
        ),
        Figure(
            "api",
            f"authenticated GET p99 latency ({what})",
            ms["auth"][1],
            "ms",
            "same routes, auth bypassed, same run",
            ms["open"][1],
            higher_is_better=False,
        ),
    ]
