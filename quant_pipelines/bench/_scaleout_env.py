"""The scale-out benchmark's surroundings: a private server with its bars, a CPU clock on the
server process, a study's trial phase read from its trial documents, and the objective alone
(the machine's ceiling for 2 processes)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository, EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port

_REPO = Path(__file__).resolve().parents[2]
#: Symbols with 20,000 hourly bars (24/7 and 24/5 calendars) and the daily symbol.
HOURLY = ("BTCUSD", "ETHUSD", "EURUSD", "USDJPY")
DAILY = "SPY"
DB = "bench"
_EVALUATORS: dict[str, Any] = {}  # objective_alone's, by configuration (one pool process)


class CpuClock:
    """Samples a process's CPU seconds every ``interval`` seconds in a daemon thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self._proc, self._interval = psutil.Process(pid), interval
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = self._proc.cpu_times()
            self._samples.append((time.time(), t.user + t.system))
            self._stop.wait(self._interval)

    def between(self, t0: float, t1: float) -> float:
        """CPU seconds between UNIX times ``t0`` and ``t1`` (nearest samples)."""
        inside = [cpu for t, cpu in self._samples if t0 <= t <= t1]
        return inside[-1] - inside[0] if len(inside) > 1 else 0.0

    def close(self) -> None:
        """Stops sampling."""
        self._stop.set()
        self._thread.join()


def hourly_bars(symbol: str, n: int) -> pd.DataFrame:
    """The last ``n`` synthetic hourly bars of ``symbol`` up to 2024 (seed 0)."""
    return SyntheticSource(seed=0, freq="1h").bars(symbol, "2020-06-01", "2024-01-01").iloc[-n:]


def objective_alone(
    config: dict[str, Any], n_bars: int, n: int, start_at: float
) -> tuple[float, float]:
    """Scores ``n`` SMA-crossover parameter sets of a bench study's objective, without Optuna
    or a database, from UNIX time ``start_at`` (so that several processes start together).
    The evaluator is built once per process and configuration (``n=0`` only builds it).

    Args:
        config: The study's ``ParallelStudyConfig`` fields (hourly symbols).
        n_bars: Bars of each symbol (:func:`hourly_bars`).
        n: Parameter sets scored (windows from a fixed sequence).
        start_at: When to start scoring.

    Returns:
        UNIX ``(start, end)`` of the scoring.
    """
    from quant_pipelines.backtest import get_strategy
    from quant_pipelines.defs.optimization.parallel import ParallelStudyConfig
    from quant_pipelines.optimizer import Evaluator, prepare

    key = json.dumps([config, n_bars], sort_keys=True)
    if key not in _EVALUATORS:
        c = ParallelStudyConfig(**config)
        bars = {symbol: hourly_bars(symbol, n_bars) for symbol in c.symbols}
        v, ppy = c.to_validation(), c.periods_per_year or None
        data = prepare(bars, validation=v, asset_class=c.asset_class, periods_per_year=ppy)
        _EVALUATORS[key] = Evaluator(get_strategy(c.strategy), data, objective=c.objective)
        _EVALUATORS[key].evaluate({})  # loads the backtest kernel
    evaluator = _EVALUATORS[key]
    time.sleep(max(0.0, start_at - time.time()))
    start = time.time()
    for i in range(n):
        evaluator.evaluate({"fast": 5 + 7 * i % 40, "slow": 60 + 13 * i % 200})
    return start, time.time()


@contextmanager
def bench_server(quick: bool) -> Iterator[tuple[EmbeddedMongo, Any]]:
    """A private server with the bench bars, and ``MONGODB_*``/``DAGSTER_HOME`` pointing at it."""
    saved = {k: os.environ.get(k) for k in ("MONGODB_URI", "MONGODB_DB", "DAGSTER_HOME")}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
        server.start()
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(_REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        os.environ |= {"MONGODB_URI": server.uri, "MONGODB_DB": DB, "DAGSTER_HOME": str(home)}
        try:
            db = make_client(server.uri)[DB]
            ensure_indexes(db)
            repo = BarsRepository(db)
            n_hourly, symbols = (3_000, HOURLY[:2]) if quick else (20_000, HOURLY)
            for symbol in symbols:
                bars = hourly_bars(symbol, n_hourly)
                repo.upsert(bars, symbol=symbol, source="bench", batch_id="bench")
            if not quick:
                bars = SyntheticSource(seed=0).bars(DAILY, "2000-01-01", "2020-01-01")
                repo.upsert(bars, symbol=DAILY, source="bench", batch_id="bench")
            yield server, db
        finally:
            server.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def trial_phase(db: Any, study_name: str, expected: int) -> dict[str, float]:
    """The study's trial phase from its trial documents: trials, UNIX start and end, rate.

    Raises:
        RuntimeError: A trial number twice, or fewer finished trials than ``expected``.
    """
    docs = list(db.trials.find({"study_name": study_name}))
    numbers = [d["number"] for d in docs]
    done = [d for d in docs if d.get("datetime_start") and d.get("datetime_complete")]
    if len(numbers) != len(set(numbers)) or len(done) < expected:
        raise RuntimeError(f"study {study_name}: {len(numbers)} trials, duplicates or loss")

    def unix(t: dt.datetime) -> float:
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()

    start = min(unix(d["datetime_start"]) for d in done)
    end = max(unix(d["datetime_complete"]) for d in done)
    return {"trials": len(done), "start": start, "end": end, "rate": len(done) / (end - start)}
