"""Optimizer benchmark: a TPE study on the MongoDB journal, in-memory, and on Optuna's file journal.

Every run is the same ``run_study`` call (SMA crossover, 5,000 daily bars, TPE, median pruning
over 3 walk-forward folds, seed 0), on three storages:

* **MongoDB journal, the production path**: ``optuna_storage(db)`` with its defaults (leases
  on, stamped every 5 s; deferred trial logs and results; params written in the background
  once sampled) and the ``studies`` / ``trials`` mirrors written through
  ``StudiesRepository``, closed after the run, exactly as
  ``services.optimization.run_requested_study`` runs a study; on a private embedded server, a
  fresh database per run.
* **Optuna's in-memory storage**: the reference; it writes nothing.
* **Optuna's file journal** (``JournalFileBackend``), a peer: the same study in a file.

The three are interleaved (the order rotates each repeat) so that load from other processes
on the machine does not land on one side only; each keeps its best rate. The per-trial cost
growth of a run is the mean interval between consecutive trial completions over the last
``window`` trials divided by that over the first ``window`` after the first (trials 2-51 and
251-300 of 300: the first trial's interval would hold the study's set-up); each storage keeps
the median over its repeats, reported against in-memory's, which grows too (TPE's sampling
costs more as trials accumulate).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from pymongo import MongoClient

from quant_pipelines.bench._report import Figure
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import run_study
from quant_pipelines.storage import EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository

N_BARS = 5_000
#: Minimum journal / in-memory ratio of trials per hour.
GOAL = 0.7
#: Shown under the report by ``bench.runner``.
NOTES = (
    "The MongoDB run is the production path (leases, deferred trial logs, mirrors, end-of-run "
    "statistics written). A trial costs one journal write on its critical path (its creation, "
    "which also carries the previous trial's attributes and result) and one in the background "
    "(its params, written while the objective runs). The growth rows compare the cost of the "
    "last 50 trials with the first 50's: in-memory grows too, from TPE's sampling."
)

#: Runs the study with ``n_trials`` and a progress callback; returns its seconds.
Runner = Callable[[int, Callable[[dict], None]], float]


def _study(bars: pd.DataFrame, n_trials: int, on_progress: Callable[[dict], None], **kw) -> float:
    start = time.perf_counter()
    summary = run_study(
        bars,
        strategy="sma_crossover",
        study_name="bench_sma_tpe",
        n_trials=n_trials,
        sampler="tpe",
        seed=0,
        asset_class="equity",
        on_progress=on_progress,
        **kw,
    )
    elapsed = time.perf_counter() - start
    assert summary.n_trials >= n_trials, summary
    return elapsed


def _measure(run: Runner, n_trials: int, window: int) -> tuple[float, float]:
    """(trials per hour, per-trial cost growth) of one run."""
    stamps: list[float] = []
    elapsed = run(n_trials, lambda _progress: stamps.append(time.perf_counter()))
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    growth = statistics.fmean(gaps[-window:]) / statistics.fmean(gaps[:window])
    return n_trials / elapsed * 3600.0, growth


def _runners(bars: pd.DataFrame, client: MongoClient, tmp: Path) -> dict[str, Runner]:
    count = iter(range(1_000_000))

    def memory(n: int, cb: Callable[[dict], None]) -> float:
        return _study(bars, n, cb)

    def mongo(n: int, cb: Callable[[dict], None]) -> float:
        name = f"bench_optimizer_{next(count)}"
        db = client[name]
        ensure_indexes(db)
        recorder = StudiesRepository(db)
        start = time.perf_counter()
        storage = optuna_storage(db)
        try:
            _study(bars, n, cb, storage=storage, recorder=recorder)
        finally:
            storage.close()  # as the service does: the last deferred logs
        elapsed = time.perf_counter() - start
        client.drop_database(name)
        return elapsed

    def file(n: int, cb: Callable[[dict], None]) -> float:
        path = tmp / f"journal_{next(count)}.log"
        start = time.perf_counter()
        _study(bars, n, cb, storage=JournalStorage(JournalFileBackend(str(path))))
        return time.perf_counter() - start

    return {"memory": memory, "mongo": mongo, "file": file}


@contextmanager
def _study_runners() -> Iterator[dict[str, Runner]]:
    """The study runners of :func:`_runners` on a private embedded server, Optuna quiet."""
    bars = SyntheticSource(0).bars("SPY", "2000-01-01", "2030-12-31").iloc[:N_BARS]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
            server.start()
            client = make_client(server.uri)
            try:
                yield _runners(bars, client, Path(tmp))
            finally:
                client.close()
                server.stop()
    finally:
        optuna.logging.set_verbosity(verbosity)


def journal_row(*, repeat: int = 3, n_trials: int = 300) -> list[dict[str, float]]:
    """Just the MongoDB journal row against in-memory, for tuning the journal: one dict per
    repeat (``ratio`` of trials per hour, each side's ``rate`` and ``growth``), the two
    interleaved and their order alternating (``python -c "from quant_pipelines.bench.optimizer
    import journal_row; print(journal_row())"``)."""
    window = min(50, n_trials // 4)
    out: list[dict[str, float]] = []
    with _study_runners() as runners:
        for i in range(repeat):
            got = {}
            for name in ("memory", "mongo") if i % 2 == 0 else ("mongo", "memory"):
                got[name] = _measure(runners[name], n_trials, window)
            (mem_rate, mem_growth), (rate, growth) = got["memory"], got["mongo"]
            out.append(
                {
                    "ratio": rate / mem_rate,
                    "rate": rate,
                    "memory_rate": mem_rate,
                    "growth": growth,
                    "memory_growth": mem_growth,
                }
            )
    return out


def run(*, quick: bool = False) -> list[Figure]:
    """Trials per hour and per-trial cost growth on each storage, in the same run."""
    n_trials, repeat = (100, 2) if quick else (300, 5)
    window = min(50, n_trials // 4)
    rates: dict[str, list[float]] = {}
    growths: dict[str, list[float]] = {}
    with _study_runners() as runners:
        names = list(runners)
        for i in range(repeat):
            for name in names[i % 3 :] + names[: i % 3]:
                rate, growth = _measure(runners[name], n_trials, window)
                rates.setdefault(name, []).append(rate)
                growths.setdefault(name, []).append(growth)
    best = {k: max(v) for k, v in rates.items()}
    grow = {k: statistics.median(v) for k, v in growths.items()}
    study = f"{n_trials} trials, SMA crossover, {N_BARS:,} bars"
    memory = "same study on Optuna's in-memory storage"
    span = f"trials {n_trials - window + 1}-{n_trials} over 2-{window + 1}"
    return [
        Figure(
            "optimizer",
            f"TPE study trials/hour on the MongoDB journal, production path ({study}; "
            "leases, mirrors)",
            best["mongo"],
            "trials/h",
            memory,
            best["memory"],
            goal=GOAL,
        ),
        Figure(
            "optimizer",
            f"TPE study trials/hour on Optuna's file journal, peer ({study})",
            best["file"],
            "trials/h",
            memory,
            best["memory"],
        ),
        Figure(
            "optimizer",
            f"per-trial cost growth on the MongoDB journal ({span}, median of {repeat})",
            grow["mongo"],
            "x",
            "in-memory storage's growth",
            grow["memory"],
            higher_is_better=False,
        ),
        Figure(
            "optimizer",
            f"per-trial cost growth on Optuna's file journal ({span}, median of {repeat})",
            grow["file"],
            "x",
            "in-memory storage's growth",
            grow["memory"],
            higher_is_better=False,
        ),
    ]
