"""Leaderboard benchmark: every overfitting statistic of a 300-trial study, against the study.

The study is the optimizer benchmark's (SMA crossover, about 5,000 daily bars, TPE, walk-forward
validation, MongoDB journal and mirrors on a private embedded server). The leaderboard's cost is
what it adds on top: the trials' return series recomputed from their parameters, the deflated
Sharpe ratio over every configuration tried, PBO over 16 CSCV blocks, Hansen's SPA test with
1,000 bootstrap draws, then the ranking and the promotion gate over the mirrors. Goal: at most
half the time the study itself took (ratio study/leaderboard >= 2).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import optuna

from quant_pipelines.backtest import get_strategy
from quant_pipelines.bench._report import Figure
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import Evaluator, prepare, run_study, study_statistics
from quant_pipelines.optimizer._mirror import record_of
from quant_pipelines.services import build_leaderboard
from quant_pipelines.storage import EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository

N_BARS = 5_000


def run(*, quick: bool = False) -> list[Figure]:
    """Seconds of the leaderboard with all statistics vs seconds of the study, same run."""
    n_trials = 60 if quick else 300
    bars = SyntheticSource(0).bars("SPY", "2000-01-01", "2030-12-31").iloc[:N_BARS]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
            server.start()
            client = make_client(server.uri)
            try:
                db = client["bench_leaderboard"]
                ensure_indexes(db)
                storage = optuna_storage(db)
                start = time.perf_counter()
                run_study(
                    bars,
                    strategy="sma_crossover",
                    study_name="bench_leaderboard",
                    n_trials=n_trials,
                    seed=0,
                    asset_class="equity",
                    storage=storage,
                    recorder=StudiesRepository(db),
                )
                total = time.perf_counter() - start
                stats_in_run = db.studies.find_one({"study_name": "bench_leaderboard"})
                study_s = total - float(stats_in_run["statistics"]["elapsed_s"])
                records = [
                    record_of(t)
                    for t in optuna.load_study(
                        study_name="bench_leaderboard", storage=storage
                    ).get_trials(deepcopy=False)
                ]
                storage.close()
                evaluator = Evaluator(
                    get_strategy("sma_crossover"), prepare(bars, asset_class="equity")
                )
                start = time.perf_counter()
                study_statistics(evaluator, records, n_blocks=16, spa_reps=1000, seed=0)
                build_leaderboard(db)
                board_s = time.perf_counter() - start
            finally:
                client.close()
                server.stop()
    finally:
        optuna.logging.set_verbosity(verbosity)
    return [
        Figure(
            "optimizer",
            f"leaderboard with DSR, PBO (16 blocks) and SPA (1,000 draws) for a {n_trials}-trial "
            f"study on {N_BARS:,} bars",
            board_s,
            "s",
            "the study itself (TPE, MongoDB journal and mirrors)",
            study_s,
            goal=2.0,
            higher_is_better=False,
        )
    ]
