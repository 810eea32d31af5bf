"""The analyst console's anomaly page against the JSON API's GET of the same anomaly.

One anomaly with 60 sessions of context (45 before the flagged bar, 15 after) and a class
peer, in an embedded MongoDB; the real app in uvicorn on loopback. The page (session lookup,
four queries, the inline SVG chart, the template) and the JSON answer (bearer key, one query:
``GET /alerts/{id}`` of the same anomaly) are fetched alternately over keep-alive connections,
and the medians compared. Goal: the page costs at most 10x the JSON GET.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from quant_pipelines.bench._report import Figure
from quant_pipelines.storage import EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port

SYMBOLS = ("BTCUSD", "ETHUSD")
FLAGGED = pd.Timestamp("2023-06-15", tz="UTC")
SEED = 0


def _seed(db) -> str:
    """Bars, scores and one critical anomaly; returns the anomaly's id."""
    from quant_pipelines.marketdata import SyntheticSource
    from quant_pipelines.storage import BarsRepository
    from quant_pipelines.storage.quality import upsert_anomalies, write_bar_scores

    rng = np.random.default_rng(SEED)
    for symbol in SYMBOLS:
        bars = SyntheticSource(seed=SEED).bars(symbol, "2023-01-01", "2023-06-30")
        BarsRepository(db).upsert(bars, symbol=symbol, source="bench", batch_id="bench")
        n = len(bars)
        scores = pd.DataFrame(
            {
                "iforest": rng.uniform(0.3, 0.6, n),
                "prophet": rng.uniform(0.0, 0.8, n),
                "severity": ["info"] * n,
                "flags": [[] for _ in range(n)],
                "rules": [[] for _ in range(n)],
                "market_event": [False] * n,
                "kind": [""] * n,
            },
            index=bars.index,
        )
        write_bar_scores(db, symbol, scores, scored_at=dt.datetime.now(dt.UTC))
    row = {
        "symbol": SYMBOLS[0],
        "ts": FLAGGED,
        "detector": "rules",
        "rule": "price_jump",
        "rules": ["price_jump"],
        "severity": "critical",
        "score": 0.9,
        "iforest": 0.9,
        "prophet": 2.5,
        "threshold": 0.72,
        "kind": "price_spike",
        "market_event": False,
        "batch_id": "bench",
    }
    (doc,) = upsert_anomalies(db, [row])
    return str(doc["_id"])


def _sign_in(http: httpx.Client, key: str) -> None:
    form = http.get("/console/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if token is None:
        raise RuntimeError("the sign-in form has no CSRF token")
    answer = http.post("/console/signin", data={"csrf_token": token.group(1), "api_key": key})
    if answer.status_code != 303 or "qp_console" not in http.cookies:
        raise RuntimeError(f"console sign-in failed: {answer.status_code}")


def _timed_get(http: httpx.Client, path: str, marker: str) -> float:
    start = time.perf_counter()
    answer = http.get(path)
    elapsed = time.perf_counter() - start
    if answer.status_code != 200 or marker not in answer.text:
        raise RuntimeError(f"GET {path}: {answer.status_code}")
    return elapsed


def run(*, quick: bool = False) -> list[Figure]:
    """Median latency of the anomaly page (chart included) against the JSON GET, same run."""
    from quant_pipelines.api import create_app
    from quant_pipelines.bench.api import _serve
    from quant_pipelines.storage.api_keys import ALERTS_WRITE, READ, create_key

    rounds = 40 if quick else 150
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
        mongo.start()
        client = make_client(mongo.uri)
        try:
            db = client["bench_console"]
            ensure_indexes(db)
            anomaly_id = _seed(db)
            key, _ = create_key(db, "bench-analyst", [READ, ALERTS_WRITE])
            base, server, thread = _serve(create_app(lambda: db))
            page_path = f"/console/anomalies/{anomaly_id}"
            json_path = f"/alerts/{anomaly_id}"
            try:
                with (
                    httpx.Client(base_url=base) as browser,
                    httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api,
                ):
                    _sign_in(browser, key)
                    page, api_get = [], []
                    for i in range(rounds + 10):  # interleaved; the first 10 rounds warm up
                        p = _timed_get(browser, page_path, "anomaly-chart")
                        j = _timed_get(api, json_path, anomaly_id)
                        if i >= 10:
                            page.append(p)
                            api_get.append(j)
            finally:
                server.should_exit = True
                thread.join(timeout=10)
        finally:
            client.close()
            mongo.stop()
    page_ms, json_ms = 1e3 * statistics.median(page), 1e3 * statistics.median(api_get)
    return [
        Figure(
            "console",
            f"GET /console/anomalies/{{id}}, page with a 60-session SVG chart, median of {rounds}",
            page_ms,
            "ms",
            "JSON GET /alerts/{id} of the same anomaly, interleaved, same run",
            json_ms,
            goal=0.1,
            higher_is_better=False,
        )
    ]
