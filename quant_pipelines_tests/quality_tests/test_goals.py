"""The sentinel's quality goals, measured by the harness on seeded symbols with injected anomalies.

A modest size keeps this under a minute: one symbol per asset class of the default universe,
two years of history and one evaluation year, a refit every 10 bars, and only the kinds the
goals are about, injected at the highest rate the injector allows (one event per 14 bars).
``docs/quality.md`` has the full-size figures (8 symbols, all kinds, weekly refits, daily
scoring).
"""

from __future__ import annotations

import pytest

from quant_pipelines.quality import QUALITY_GOALS, run_evaluation

GOAL_KINDS = (
    "price_spike",
    "stale_price",
    "non_positive_price",
    "ohlc_inconsistency",
    "duplicate_bar",
)


@pytest.mark.slow
def test_quality_goals_are_met() -> None:
    run = run_evaluation(
        ["AAPL", "EURUSD", "BTCUSD"],
        seed=0,
        history_start="2019-01-01",
        start="2021-01-01",
        end="2021-12-31",
        rate=0.07,
        kinds=GOAL_KINDS,
        refit_every=10,
        batch=10,
    )
    report = run.report
    for goal in QUALITY_GOALS:
        if goal.kinds:
            assert report.per_kind.loc[list(goal.kinds), "events"].sum() >= 10, goal.name
    assert report.clean_bars > 700
    assert report.meets_goals(), report.to_markdown()
