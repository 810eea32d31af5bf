"""Bars upserted per second through the repository, against raw ``insert_many``, same server."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from quant_pipelines.bench._report import Figure
from quant_pipelines.storage import BarsRepository, EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.bars import bar_documents
from quant_pipelines.storage.embedded import free_port


def _frames(n_symbols: int, n_bars: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2000-01-03 14:30", periods=n_bars, freq="D", tz="UTC", name="ts")
    frames = {}
    for i in range(n_symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
        frames[f"S{i:03d}"] = pd.DataFrame(
            {
                "open": close,
                "high": close * 1.01,
                "low": close * 0.99,
                "close": close,
                "volume": rng.uniform(1e5, 1e6, n_bars),
            },
            index=index,
        )
    return frames


def run(*, quick: bool = False) -> list[Figure]:
    """Measures repository upserts vs raw inserts on a private embedded server."""
    n_symbols, n_bars = (2, 2_000) if quick else (8, 5_000)
    frames = _frames(n_symbols, n_bars)
    docs = [
        d
        for symbol, frame in frames.items()
        for d in bar_documents(frame, symbol=symbol, source="bench", batch_id="bench")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
        server.start()
        try:
            client = make_client(server.uri)
            raw_db, repo_db = client["bench_raw"], client["bench_repo"]
            for db in (raw_db, repo_db):
                ensure_indexes(db)
            start = time.perf_counter()
            raw_db.bars.insert_many([dict(d) for d in docs], ordered=False)
            raw_s = time.perf_counter() - start

            repo = BarsRepository(repo_db)
            start = time.perf_counter()
            repo.upsert_documents(docs)
            upsert_s = time.perf_counter() - start

            start = time.perf_counter()
            repo.upsert_documents(docs)  # every key exists: the retried-run path
            rerun_s = time.perf_counter() - start
            assert repo.count() == len(docs)
            client.close()
        finally:
            server.stop()
    n = len(docs)
    return [
        Figure(
            "storage",
            f"bars upserted/s into an empty collection ({n:,} bars)",
            n / upsert_s,
            "bars/s",
            "raw pymongo insert_many, same docs, same server",
            n / raw_s,
            goal=0.5,
        ),
        Figure(
            "storage",
            f"bars re-upserted/s, every key present ({n:,} bars)",
            n / rerun_s,
            "bars/s",
            "raw pymongo insert_many, same docs, same server",
            n / raw_s,
        ),
    ]
