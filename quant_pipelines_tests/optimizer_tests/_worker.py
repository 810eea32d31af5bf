"""A study worker run as a subprocess by the fault tests (``python -m ...optimizer_tests._worker``).

It registers ``slow_sma`` (the SMA crossover, sleeping ``--delay`` seconds per evaluation) in
its own process only, so a test can kill it in the middle of a trial. With ``--trace PATH``, the
parameters of every evaluation are appended to PATH (one JSON line) before it sleeps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from quant_pipelines.backtest import register_strategy
from quant_pipelines.backtest.strategies.rules import SmaCrossover
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import run_study
from quant_pipelines.storage import make_client
from quant_pipelines.storage.optuna_journal import optuna_storage
from quant_pipelines.storage.studies import StudiesRepository


def small_bars() -> Any:
    """About 500 daily SPY bars."""
    return SyntheticSource(0).bars("SPY", "2016-01-01", "2017-12-31")


class SlowSma(SmaCrossover):
    """SMA crossover that takes ``delay`` seconds per evaluation (and traces its params)."""

    name = "slow_sma"

    def __init__(self, delay: float, trace: Path | None = None) -> None:
        self.delay = delay
        self.trace = trace

    def targets(self, cache: Any, **p: Any) -> np.ndarray:
        if self.trace is not None:
            with self.trace.open("a") as f:
                f.write(json.dumps(p) + "\n")
        time.sleep(self.delay)
        return super().targets(cache, **p)


def main(argv: list[str] | None = None) -> None:
    """Runs (or resumes) one study and prints its summary as JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--n-trials", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lease", type=float, default=0.5)
    ap.add_argument("--grace", type=float, default=1.5)
    ap.add_argument("--trace", type=Path, default=None)
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    register_strategy(SlowSma(args.delay, args.trace))
    client = make_client(args.uri)
    db = client[args.db]
    storage = optuna_storage(db, heartbeat_interval=args.lease, grace_period=args.grace)
    summary = run_study(
        small_bars(),
        strategy="slow_sma",
        study_name=args.study,
        n_trials=args.n_trials,
        seed=args.seed,
        n_folds=2,
        storage=storage,
        recorder=StudiesRepository(db),
        asset_class="equity",
    )
    storage.close()
    print(json.dumps(summary.to_dict(), default=str), flush=True)


if __name__ == "__main__":
    main()
