"""Whole studies on a planted edge and on pure noise: the statistics tell them apart.

Bars with a planted edge drift up or down in persistent regimes (about 400 bars each), which a
Donchian breakout with windows shorter than the regimes captures; buy-and-hold earns nothing
on average. The noise bars have the same volatility and no drift.
"""

from __future__ import annotations

import pytest

from quant_pipelines.optimizer import rank_leaderboard, run_study
from quant_pipelines_tests._bars import make_trend_bars

pytestmark = pytest.mark.slow


def _study(bars, recorder, name: str, **kw):
    summary = run_study(
        bars,
        strategy="donchian_breakout",
        study_name=name,
        n_trials=80,
        seed=0,
        recorder=recorder,
        asset_class="equity",
        **kw,
    )
    doc = recorder.studies[name]
    trials = [dict(t, study_name=n) for (n, _), t in recorder.trials.items() if n == name]
    study = {**doc, "study_name": name, "objective": "sharpe", "space": doc.get("space")}
    rows = rank_leaderboard([study], trials)
    return summary, rows


def test_a_planted_edge_is_promoted_and_pure_noise_is_not(recorder) -> None:
    bars = make_trend_bars(3000, seed=2, drift=0.003, mean_duration=400)
    edge, edge_rows = _study(bars, recorder, "edge")
    noise_bars = make_trend_bars(3000, seed=2, drift=0.0, mean_duration=400)
    noise, noise_rows = _study(noise_bars, recorder, "noise")
    e, n = edge.statistics, noise.statistics
    assert e["pbo"]["pbo"] <= 0.5 and e["pbo"]["probability_of_loss"] < 0.05
    assert n["pbo"]["probability_of_loss"] > 0.2
    assert e["spa"]["pvalue"] <= 0.10 < n["spa"]["pvalue"]
    assert edge.best_deflated_sharpe >= 0.95 > noise.best_deflated_sharpe
    assert edge_rows[0]["promoted"], edge_rows[0]["reason"]
    assert not any(r["promoted"] for r in noise_rows)
    assert noise_rows[0]["selected"] and noise_rows[0]["reason"] != "passes every test"


def test_pruning_does_not_change_how_many_configurations_were_tried(recorder) -> None:
    bars = make_trend_bars(1500, seed=3, drift=0.0)
    pruned = run_study(bars, strategy="sma_crossover", study_name="p", n_trials=40, seed=1)
    assert pruned.n_pruned > 0
    stats = pruned.statistics
    # Every complete, pruned and failed configuration counts; pruned ones have a Sharpe ratio.
    assert stats["n_trials_tried"] >= pruned.n_complete + pruned.n_pruned - 1
    assert stats["n_with_sharpe"] >= pruned.n_complete + pruned.n_pruned - 1
