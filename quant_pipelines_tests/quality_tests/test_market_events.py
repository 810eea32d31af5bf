"""Moves shared by an asset class are market events, not data errors."""

from __future__ import annotations

import pandas as pd
import pytest

from quant_pipelines.quality import Thresholds, mark_market_events, score_bars
from quant_pipelines_tests.quality_tests.conftest import make_bars

T = 150  # the shock bar
# Thresholds for forests fitted on only 100 bars (scores run lower than with a 250-bar window).
THRESHOLDS = Thresholds(0.65, 1.0, 0.5, 0.7, 1.5, 1.0)


def shocked(seed: int, factor: float) -> pd.DataFrame:
    bars = make_bars(170, seed=seed)
    bars.iloc[T:, :4] *= factor  # a genuine level shift from bar T on
    bars.iloc[T, 0] = bars.iloc[T - 1, 3]  # it happens during the session
    bars.iloc[T, 1] = bars.iloc[T, [0, 3]].max()
    bars.iloc[T, 2] = bars.iloc[T, [0, 3]].min()
    return bars


@pytest.fixture(scope="module")
def scores() -> dict[str, pd.DataFrame]:
    frames = {
        "A": shocked(1, 0.9),
        "B": shocked(2, 0.9),
        "C": shocked(3, 0.91),
        "D": make_bars(170, seed=4),
        "X": shocked(5, 0.9),
    }
    frames["C"].iloc[T, 3] = -1.0  # an impossible value on the market-wide day
    return {
        name: score_bars(b.iloc[120:], history=b.iloc[:120], thresholds=THRESHOLDS)
        for name, b in frames.items()
    }


CLASSES = {"A": "equity", "B": "equity", "C": "equity", "D": "equity", "X": "crypto"}


def test_shared_move_is_a_market_event(scores: dict[str, pd.DataFrame]) -> None:
    ts = scores["A"].index[T - 120]
    assert scores["A"].loc[ts, "severity"] in ("warning", "critical")
    marked = mark_market_events(scores, CLASSES)
    for name in ("A", "B"):
        row = marked[name].loc[ts]
        assert row["market_event"]
        assert "market_event" in row["flags"]
        before = scores[name].loc[ts, "statistical_level"]
        assert ["info", "warning", "critical"].index(row["severity"]) == max(before - 1, 0)
    assert marked["A"]["market_event"].sum() == 1


def test_rules_keep_their_severity(scores: dict[str, pd.DataFrame]) -> None:
    ts = scores["C"].index[T - 120]
    marked = mark_market_events(scores, CLASSES)
    assert marked["C"].loc[ts, "severity"] == "critical"


def test_quiet_symbols_and_other_classes_are_untouched(scores) -> None:
    marked = mark_market_events(scores, lambda name: CLASSES[name])
    assert not marked["D"]["market_event"].any()
    assert not marked["X"]["market_event"].any()  # alone in its class: not "many symbols"
    pd.testing.assert_frame_equal(marked["X"], scores["X"])
    assert not scores["A"]["market_event"].any()  # inputs are not modified
