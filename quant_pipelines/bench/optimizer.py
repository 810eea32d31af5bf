"""Optimizer benchmark: a TPE study on the MongoDB journal against Optuna's in-memory storage.

Both runs are the same ``run_study`` call (SMA crossover, about 5,000 daily bars, TPE, median
pruning over walk-forward steps, same seed). The MongoDB run also writes the ``studies`` /
``trials`` mirrors and leases its running trials, on a private embedded server; the in-memory
run writes nothing. The two are interleaved and repeated, and each keeps its best rate, so
that load from other processes on the machine does not land on one side only.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import optuna

from quant_pipelines.bench._report import Figure
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import run_study
from quant_pipelines.storage import EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository

N_BARS = 5_000


def _rate(n_trials: int, **kwargs: object) -> float:
    bars = SyntheticSource(0).bars("SPY", "2000-01-01", "2030-12-31").iloc[:N_BARS]
    start = time.perf_counter()
    summary = run_study(
        bars,
        strategy="sma_crossover",
        study_name="bench_sma_tpe",
        n_trials=n_trials,
        sampler="tpe",
        seed=0,
        asset_class="equity",
        **kwargs,  # type: ignore[arg-type]
    )
    elapsed = time.perf_counter() - start
    assert summary.n_trials >= n_trials, summary
    return summary.n_trials / elapsed * 3600.0


def run(*, quick: bool = False) -> list[Figure]:
    """Trials per hour of a TPE study, MongoDB-backed vs in-memory, in the same run."""
    n_trials = 30 if quick else 300
    repeat = 2
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    memory = mongo = 0.0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
            server.start()
            client = make_client(server.uri)
            try:
                for i in range(repeat):
                    memory = max(memory, _rate(n_trials))
                    db = client[f"bench_optimizer_{i}"]
                    ensure_indexes(db)
                    storage = optuna_storage(db)
                    rate = _rate(n_trials, storage=storage, recorder=StudiesRepository(db))
                    storage.close()
                    mongo = max(mongo, rate)
            finally:
                client.close()
                server.stop()
    finally:
        optuna.logging.set_verbosity(verbosity)
    return [
        Figure(
            "optimizer",
            f"TPE study trials/hour on the MongoDB journal ({n_trials} trials, SMA crossover, "
            f"{N_BARS:,} bars, with mirrors and leases)",
            mongo,
            "trials/h",
            "same study on Optuna's in-memory storage",
            memory,
            goal=0.5,
        )
    ]
