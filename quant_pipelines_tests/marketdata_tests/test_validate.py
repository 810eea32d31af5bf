"""Validation rules: each fires on a crafted frame and none fires on clean bars."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata import (
    RULES,
    SyntheticSource,
    ValidationIssue,
    issues_frame,
    load_universe,
    missing_bars,
    validate_bars,
)
from quant_pipelines.marketdata.validate import canonical_rule


def _set(row: int, **values: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        for col, value in values.items():
            out.iloc[row, out.columns.get_loc(col)] = value
        return out

    return mutate


def _duplicate(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df.iloc[:4], df.iloc[3:4], df.iloc[4:]])


def _swap(df: pd.DataFrame) -> pd.DataFrame:
    order = [0, 1, 2, 4, 3, *range(5, len(df))]
    return df.iloc[order]


def _shift_off_session(df: pd.DataFrame) -> pd.DataFrame:
    index = df.index.to_numpy().copy()
    index[3] = index[3] + pd.Timedelta("1h")
    return df.set_axis(pd.DatetimeIndex(index, name="ts"))


CASES = [
    ("non_positive_price", _set(3, close=0.0, low=0.0), 3, {"close", "low"}),
    ("non_positive_price", _set(3, open=-1.0), 3, {"open"}),
    ("inconsistent_ohlc", _set(3, high=100.0), 3, {"high"}),  # close is 103
    ("inconsistent_ohlc", _set(3, low=103.0), 3, {"low"}),  # open is 102.5
    ("non_finite_value", _set(3, volume=np.nan), 3, {"volume"}),
    ("non_finite_value", _set(3, high=np.inf), 3, {"high"}),
    ("negative_volume", _set(3, volume=-5.0), 3, {"volume"}),
    ("duplicate_bar", _duplicate, 3, {None}),
    ("unsorted_ts", _swap, 3, {None}),
    ("outside_session", _shift_off_session, 3, {None}),
]


@pytest.mark.parametrize(("rule", "mutate", "row", "columns"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_fires_on_a_crafted_frame(
    clean_bars: pd.DataFrame, rule: str, mutate, row: int, columns: set
) -> None:
    bad = mutate(clean_bars)
    issues = validate_bars(bad, calendar="XNYS", symbol="TEST")
    fired = [i for i in issues if i.rule == rule]
    assert {i.column for i in fired} == columns
    assert {i.ts for i in fired} == {
        clean_bars.index[row] if rule != "outside_session" else bad.index[row]
    }
    assert all(i.symbol == "TEST" and i.message for i in fired)
    assert rule in RULES


def test_clean_frame_has_no_issues(clean_bars: pd.DataFrame) -> None:
    assert validate_bars(clean_bars, calendar="XNYS") == []


def test_outside_session_needs_a_calendar(clean_bars: pd.DataFrame) -> None:
    bad = _shift_off_session(clean_bars)
    assert validate_bars(bad) == []


def test_a_weekend_bar_is_outside_the_equity_session(clean_bars: pd.DataFrame) -> None:
    saturday = pd.Timestamp("2024-01-06 14:30", tz="UTC")
    extra = clean_bars.iloc[:1].set_axis(pd.DatetimeIndex([saturday]))
    bad = pd.concat([clean_bars, extra]).sort_index()
    issues = validate_bars(bad, calendar="equity")
    assert [(i.rule, i.ts) for i in issues] == [("outside_session", saturday)]
    assert validate_bars(bad, calendar="crypto", freq="1D") != []  # crypto bars sit at 00:00


@pytest.mark.parametrize("name", [s.name for s in load_universe()])
def test_clean_synthetic_bars_pass_every_rule(source: SyntheticSource, name: str) -> None:
    bars = source.bars(name, "2015-01-01", "2024-12-31")
    calendar = source.universe.get(name).calendar
    assert validate_bars(bars, calendar=calendar, symbol=name) == []


def test_clean_intraday_synthetic_bars_pass_every_rule() -> None:
    src = SyntheticSource(3, freq="30min")
    for name in ("SPY", "EURUSD", "ETHUSD"):
        bars = src.bars(name, "2023-12-20", "2024-01-10")
        assert validate_bars(bars, calendar=src.universe.get(name).calendar, freq="30min") == []


def test_missing_bars_lists_absent_expected_times(clean_bars: pd.DataFrame) -> None:
    gappy = clean_bars.drop(clean_bars.index[[2, 5]])
    missing = missing_bars(gappy, "XNYS", "2024-01-02", "2024-01-16")
    assert list(missing) == [clean_bars.index[2], clean_bars.index[5]]
    assert list(missing_bars(clean_bars, "XNYS", "2024-01-02", "2024-01-16")) == []


def test_issues_frame_columns_and_types(clean_bars: pd.DataFrame) -> None:
    issues = validate_bars(_set(1, volume=-1.0)(clean_bars), symbol="X")
    frame = issues_frame(issues)
    assert list(frame.columns) == ["rule", "ts", "symbol", "column", "message"]
    assert frame.loc[0, "rule"] == "negative_volume"
    assert frame.loc[0, "ts"] == clean_bars.index[1]
    assert str(frame["ts"].dt.tz) == "UTC"
    empty = issues_frame([])
    assert list(empty.columns) == list(frame.columns)
    assert len(empty) == 0


def test_issue_is_frozen() -> None:
    issue = ValidationIssue(rule="non_finite_value", ts=None, message="m")
    with pytest.raises(AttributeError):
        issue.rule = "other"  # type: ignore[misc]


def test_high_below_low_is_inconsistent_even_without_open_and_close(
    clean_bars: pd.DataFrame,
) -> None:
    bad = _set(3, open=np.nan, close=np.nan, high=90.0, low=95.0)(clean_bars)
    issues = validate_bars(bad)
    assert [(i.column, i.ts) for i in issues if i.rule == "inconsistent_ohlc"] == [
        ("high", clean_bars.index[3])
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("high_below_open_close", "inconsistent_ohlc"),
        ("low_above_open_close", "inconsistent_ohlc"),
        ("nan_value", "non_finite_value"),
        ("duplicate_ts", "duplicate_bar"),
        ("unsorted_ts", "unsorted_ts"),
        ("price_jump", "price_jump"),
    ],
)
def test_stored_names_from_before_the_rename_map_to_the_current_ones(old: str, new: str) -> None:
    assert canonical_rule(old) == new


def test_a_million_clean_rows_validate_in_well_under_a_second() -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    frame = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1.0},
        index=pd.date_range("2000-01-01", periods=n, freq="1min", tz="UTC", name="ts"),
    )
    validate_bars(frame.iloc[:1000])  # warm-up
    started = time.perf_counter()
    issues = validate_bars(frame)
    elapsed = time.perf_counter() - started
    assert issues == []
    assert elapsed < 1.0, f"validate_bars took {elapsed:.2f}s for 1M rows"
