"""The honest optimizer on real daily bars (GOOG 2004-2013, shipped by backtesting.py)."""

from __future__ import annotations

import optuna
import pytest

from quant_pipelines.optimizer import rank_leaderboard, run_study
from quant_pipelines_tests._bars import goog_bars

pytestmark = pytest.mark.slow


def test_trying_more_configurations_on_goog_deflates_and_promotes_nothing(recorder) -> None:
    bars = goog_bars()
    storage = optuna.storages.InMemoryStorage()
    kw = {"strategy": "sma_crossover", "study_name": "goog", "seed": 0, "storage": storage}
    small = run_study(bars, n_trials=20, asset_class="equity", **kw)
    pick = small.best_number
    dsr_small = small.statistics["deflated_sharpe"][str(pick)]
    large = run_study(bars, n_trials=120, asset_class="equity", recorder=recorder, **kw)
    stats = large.statistics
    assert stats["n_trials_tried"] > small.statistics["n_trials_tried"]
    # The same trial, judged among six times as many configurations, is deflated more.
    assert stats["deflated_sharpe"][str(pick)] < dsr_small
    # On 2011-2013 GOOG, buy-and-hold (Sharpe ~0.85) beats the moving-average pick, and no
    # configuration beats buy-and-hold once 120 are accounted for: nothing is promoted.
    assert stats["spa"]["pvalue"] > 0.10
    doc = recorder.studies["goog"]
    trials = [dict(t, study_name="goog") for (n, _), t in recorder.trials.items() if n == "goog"]
    rows = rank_leaderboard([{**doc, "study_name": "goog", "objective": "sharpe"}], trials)
    assert rows and not any(r["promoted"] for r in rows)
    assert "SPA p" in rows[0]["reason"]
    assert 0.0 <= stats["pbo"]["pbo"] <= 1.0 and stats["pbo"]["n_splits"] == 12870
