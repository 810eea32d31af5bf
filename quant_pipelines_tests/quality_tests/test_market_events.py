"""Moves shared across an asset class are market events (info), not data errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.quality import fit_models, mark_market_events, score_bars
from quant_pipelines_tests.quality_tests.conftest import make_bars

T = 150  # the shocked bar
N = 170


def _bars(seed: int) -> pd.DataFrame:
    """A random walk times a factor common to the class (so the symbols are correlated)."""
    bars = make_bars(N, seed=seed)
    common = np.exp(np.cumsum(np.random.default_rng(99).normal(0.0, 0.006, N)))
    bars.iloc[:, :4] = bars.iloc[:, :4].to_numpy() * common[:, None]
    return bars


def crash(bars: pd.DataFrame, move: float, *, volume: float = 4.0, wick: float = 0.0) -> None:
    """A genuine session at bar T: a close-to-close ``move``, ``volume`` times the volume and
    an extra intraday excursion of ``wick`` below the low (a flash crash)."""
    prev = bars["close"].iloc[T - 1]
    after = bars.iloc[T:, :4] * np.exp(move)
    bars.iloc[T:, :4] = after.to_numpy()
    o, c = prev, bars["close"].iloc[T]
    bars.iloc[T, 0] = o
    bars.iloc[T, 1] = max(o, c) * 1.003
    bars.iloc[T, 2] = min(o, c) * (1 - 0.003 - wick)
    bars.iloc[T, 4] *= volume


def score(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = {}
    for name, bars in frames.items():
        models = fit_models(bars.iloc[:T], with_prophet=False)
        out[name] = score_bars(bars.iloc[T - 5 :], history=bars.iloc[: T - 5], models=models)
    return out


def at_t(scores: dict[str, pd.DataFrame], name: str) -> pd.Series:
    frame = scores[name]
    return frame.loc[frame.index[5]]


@pytest.fixture(scope="module")
def crash_day() -> dict[str, pd.DataFrame]:
    frames = {name: _bars(seed) for name, seed in zip("ABCDE", range(1, 6), strict=True)}
    for name, move in zip("ABCD", (-0.09, -0.08, -0.10, -0.07), strict=True):
        crash(frames[name], move)
    frames["C"].iloc[T + 2, 3] = -1.0  # an impossible value on a later bar
    return score(frames)


def test_a_crash_shared_by_the_class_is_a_market_event(crash_day) -> None:
    assert at_t(crash_day, "A")["severity"] != "info"  # alone, it would be an alert
    marked = mark_market_events(crash_day, dict.fromkeys("ABCDE", "equity"))
    for name in "ABCD":
        row = at_t(marked, name)
        assert row["market_event"] and "market_event" in row["flags"]
        assert row["severity"] == "info" and row["kind"] == "market_event"
    assert marked["A"]["market_event"].sum() == 1
    assert not at_t(marked, "E")["market_event"]  # E did not take part
    assert marked["C"]["severity"].iloc[7] == "critical"  # rules keep their level


def test_inputs_are_not_modified_and_other_classes_untouched(crash_day) -> None:
    classes = {"A": "equity", "B": "equity", "C": "equity", "D": "fx", "E": "fx"}
    marked = mark_market_events(crash_day, lambda name: classes[name])
    assert not crash_day["A"]["market_event"].any()
    assert at_t(marked, "A")["market_event"]  # A, B and C share it
    assert not marked["D"]["market_event"].any()  # D's class: D alone moved
    pd.testing.assert_frame_equal(marked["E"], crash_day["E"])


def test_a_flash_crash_is_a_market_event() -> None:
    frames = {name: _bars(seed) for name, seed in zip("ABC", (11, 12, 13), strict=True)}
    for name in "ABC":
        crash(frames[name], -0.004, volume=5.0, wick=0.08)  # big range, small net move
    scores = score(frames)
    assert abs(at_t(scores, "A")["ret_z"]) < 2.5
    assert at_t(scores, "A")["range_z"] > 1.0
    marked = mark_market_events(scores, dict.fromkeys("ABC", "equity"))
    assert all(at_t(marked, n)["market_event"] for n in "ABC")
    assert all(at_t(marked, n)["severity"] == "info" for n in "ABC")


@pytest.mark.parametrize("size", [2, 4])
def test_one_symbols_error_is_not_a_market_event(size: int) -> None:
    frames = {f"S{i}": _bars(20 + i) for i in range(size)}
    bars = frames["S0"]
    bars.iloc[T, 3] *= 1.25  # a bad close, 20+ sigmas
    bars.iloc[T, 1] = bars.iloc[T, [0, 1, 3]].max()
    bars.iloc[T, 4] *= 30
    scores = score(frames)
    assert at_t(scores, "S0")["severity"] != "info"
    marked = mark_market_events(scores, lambda _: "equity")
    assert not any(m["market_event"].any() for m in marked.values())
    pd.testing.assert_frame_equal(marked["S0"], scores["S0"])


def test_a_class_of_two_shares_a_move_and_an_error_on_that_day_stays() -> None:
    frames = {"A": _bars(31), "B": _bars(32), "C": _bars(33)}
    crash(frames["A"], -0.08)
    crash(frames["B"], -0.09)
    two = score({"A": frames["A"], "B": frames["B"]})
    marked = mark_market_events(two, dict.fromkeys("AB", "equity"))
    assert at_t(marked, "A")["market_event"] and at_t(marked, "B")["market_event"]
    crash(frames["C"], 1.2)  # on the crash day C prints a +232% bar: not the market's move
    three = score(frames)
    marked = mark_market_events(three, dict.fromkeys("ABC", "equity"))
    row = at_t(marked, "C")
    assert not row["market_event"] and row["severity"] == "critical"
    assert at_t(marked, "A")["market_event"]


def test_a_jump_the_class_shares_is_a_market_event() -> None:
    frames = {n: _bars(s) for n, s in zip("XYZ", (41, 42, 43), strict=True)}
    for name, move in zip("XYZ", (1.20, 1.15, 1.25), strict=True):  # the class tripled
        crash(frames[name], move)
    scores = score(frames)
    assert all("price_jump" in at_t(scores, n)["rules"] for n in "XYZ")
    marked = mark_market_events(scores, dict.fromkeys("XYZ", "crypto"))
    assert all(at_t(marked, n)["severity"] == "info" for n in "XYZ")
