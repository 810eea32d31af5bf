"""Rules for data errors: one hand-made frame per rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata import RULES as VALIDATION_RULES
from quant_pipelines.quality import RULES, check_rules, missing_bar_times
from quant_pipelines_tests.quality_tests.conftest import make_bars


def broken(frame: pd.DataFrame) -> dict[pd.Timestamp, list[str]]:
    """Rules broken per row, only rows that broke one."""
    return {ts: r for ts, r in zip(frame.index, frame["rules"], strict=True) if r}


def test_clean_bars_break_no_rule() -> None:
    flags = check_rules(make_bars(40))
    assert not flags[list(RULES)].to_numpy().any()
    assert flags["rules"].map(len).sum() == 0


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("close", 0.0, "non_positive_price"),
        ("low", -1.0, "non_positive_price"),
        ("close", np.nan, "non_finite_value"),
        ("volume", np.inf, "non_finite_value"),
        ("volume", -5.0, "negative_volume"),
        ("volume", 0.0, "zero_volume"),
    ],
)
def test_value_rules(column: str, value: float, rule: str) -> None:
    bars = make_bars(20)
    bars.iloc[7, bars.columns.get_loc(column)] = value
    found = broken(check_rules(bars))
    assert rule in found[bars.index[7]]
    assert set(found) == {bars.index[7]}


@pytest.mark.parametrize("side", ["high", "low"])
def test_inconsistent_ohlc(side: str) -> None:
    bars = make_bars(20)
    row = bars.iloc[5]
    if side == "high":
        bars.iloc[5, bars.columns.get_loc("high")] = min(row["open"], row["close"]) * 0.99
    else:
        bars.iloc[5, bars.columns.get_loc("low")] = max(row["open"], row["close"]) * 1.01
    assert broken(check_rules(bars)) == {bars.index[5]: ["inconsistent_ohlc"]}


def test_duplicate_rows_all_flagged_and_aligned() -> None:
    bars = make_bars(10)
    dup = pd.concat([bars.iloc[:4], bars.iloc[3:4], bars.iloc[4:]])
    flags = check_rules(dup)
    assert len(flags) == len(dup)
    assert flags.index.equals(dup.index)
    assert flags["duplicate_bar"].tolist() == [False] * 3 + [True, True] + [False] * 6


def test_stale_run_is_flagged_from_the_bar_that_makes_it_five_long() -> None:
    bars = make_bars(30)
    frozen = bars["close"].iloc[9]
    for i in range(10, 16):  # bar 9 is genuine, 10..15 repeat it: 7 identical closes
        bars.iloc[i, :4] = frozen
    flags = check_rules(bars)
    assert flags.index[flags["stale_price"]].tolist() == list(bars.index[13:16])
    bars.iloc[13, bars.columns.get_loc("close")] = frozen * 1.01  # runs of 4 and 3 closes
    assert not check_rules(bars)["stale_price"].any()


def test_stale_flags_never_change_with_later_bars() -> None:
    bars = make_bars(30)
    bars.iloc[10:17, :4] = bars["close"].iloc[9]  # 8 identical closes
    full = check_rules(bars)["stale_price"]
    for end in range(10, 30):
        pd.testing.assert_series_equal(check_rules(bars.iloc[:end])["stale_price"], full[:end])


def test_stale_run_may_start_in_history() -> None:
    bars = make_bars(30)
    frozen = bars["close"].iloc[17]
    bars.iloc[18:24, :4] = frozen  # 7 identical closes, the 5th at bar 21
    flags = check_rules(bars.iloc[20:], history=bars.iloc[:20])
    assert flags["stale_price"].tolist()[:5] == [False, True, True, True, False]
    assert not flags["stale_price"].iloc[5:].any()


def test_missing_bars_flag_the_bar_after_the_gap(source) -> None:
    bars = source.bars("SPY", "2024-03-01", "2024-03-29")
    gappy = bars.drop(bars.index[[5, 6]])
    flags = check_rules(gappy, calendar="XNYS")
    assert flags.index[flags["missing_bars"]].tolist() == [bars.index[7]]
    assert flags.loc[bars.index[7], "gap_before"] == 2
    assert not check_rules(gappy)["missing_bars"].any()  # no calendar, no gap rule
    assert missing_bar_times(gappy, "XNYS").equals(bars.index[[5, 6]])


def test_missing_bars_across_the_batch_boundary(source) -> None:
    bars = source.bars("SPY", "2024-03-01", "2024-03-29")
    flags = check_rules(bars.iloc[10:], history=bars.iloc[:9], calendar="XNYS")
    assert flags["missing_bars"].tolist()[:2] == [True, False]


def test_weekends_and_holidays_are_not_gaps(source) -> None:
    bars = source.bars("AAPL", "2023-12-15", "2024-01-10")  # spans Christmas and New Year
    assert not check_rules(bars, calendar="XNYS")["missing_bars"].any()


def test_validation_and_the_sentinel_share_one_vocabulary() -> None:
    shared = set(VALIDATION_RULES) & set(RULES)
    assert shared == {
        "non_positive_price",
        "inconsistent_ohlc",
        "non_finite_value",
        "negative_volume",
        "duplicate_bar",
    }
