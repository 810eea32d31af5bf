"""Price jumps beyond what any session produces, and possible splits: critical, every time."""

from __future__ import annotations

import pandas as pd
import pytest

from quant_pipelines.quality import JUMP_BOUNDS, check_rules, fit_models, score_bars
from quant_pipelines_tests._bars import goog_bars
from quant_pipelines_tests.quality_tests.conftest import make_bars

PRICES = ["open", "high", "low", "close"]


def planted(bars: pd.DataFrame, at: int, factor: float, *, persist: bool = False) -> pd.DataFrame:
    out = bars.copy()
    rows = slice(at, None) if persist else slice(at, at + 1)
    out.iloc[rows, :4] = out.iloc[rows, :4].to_numpy() * factor
    return out


@pytest.mark.parametrize("factor", [10.0, 0.01])
@pytest.mark.parametrize("position", [0, 1, 3])
def test_x10_and_div100_are_critical_anywhere_in_a_batch(
    aapl: pd.DataFrame, aapl_models, factor: float, position: int
) -> None:
    bars = planted(aapl, 250 + position, factor)
    out = score_bars(bars.iloc[250:255], history=bars.iloc[:250], models=aapl_models)
    row = out.iloc[position]
    assert row["severity"] == "critical"
    assert "price_jump" in row["rules"]
    assert row["kind"] == ("possible_split" if factor == 10.0 else "price_jump")  # 1:10 reverse
    after = out.drop(index=out.index[position])
    assert not after["rules"].map(lambda r: "price_jump" in r).any()  # the reversion is fine


def test_the_bar_after_a_bad_print_at_the_end_of_history_is_fine(
    aapl: pd.DataFrame, aapl_models
) -> None:
    bars = planted(aapl, 249, 10.0)
    out = score_bars(bars.iloc[250:252], history=bars.iloc[:250], models=aapl_models)
    assert not out["rules"].map(len).any()


def test_x10_and_div100_on_real_bars_every_time() -> None:
    goog = goog_bars()
    models = fit_models(goog.iloc[:400], calendar="XNYS", with_prophet=False)
    found = []
    for k, at in enumerate(range(420, 2100, 60)):
        factor = 10.0 if k % 2 == 0 else 0.01
        bars = planted(goog, at, factor)
        for lo in (at, at - 1):  # the first and the second bar of a daily or two-day batch
            out = score_bars(
                bars.iloc[lo : at + 2], history=bars.iloc[:lo], models=models, calendar="XNYS"
            )
            found.append(out.loc[goog.index[at], "severity"] == "critical")
            assert out.loc[goog.index[at + 1], "kind"] not in ("price_jump", "possible_split")
    assert len(found) == 56 and all(found)


def test_a_new_level_is_flagged_once(aapl: pd.DataFrame, aapl_models) -> None:
    bars = planted(aapl, 252, 0.01, persist=True)  # the feed switched to another unit
    out = score_bars(bars.iloc[250:260], history=bars.iloc[:250], models=aapl_models)
    jumps = out["rules"].map(lambda r: "price_jump" in r)
    assert jumps.tolist() == [False, False, True] + [False] * 7
    assert out["severity"].iloc[2] == "critical"


@pytest.mark.parametrize(("factor", "split"), [(0.5, True), (1 / 1.5, True), (1.26, False)])
def test_split_ratios_are_possible_splits(factor: float, split: bool) -> None:
    bars = make_bars(60, seed=5)  # about 1% daily moves: a 2:1 split is 70 sigmas
    flags = check_rules(planted(bars, 50, factor, persist=True))
    assert bool(flags["price_jump"].iloc[50]) is split
    assert bool(flags["possible_split"].iloc[50]) is split
    assert flags["price_jump"].sum() == int(split)


def test_the_bound_belongs_to_the_asset_class() -> None:
    bars = planted(make_bars(40, seed=2), 30, 3.7)  # no split ratio
    assert JUMP_BOUNDS["equity"] < 3.7 < JUMP_BOUNDS["crypto"]
    assert check_rules(bars)["price_jump"].iloc[30]  # equity default
    assert not check_rules(bars, jump_bound=JUMP_BOUNDS["crypto"])["price_jump"].iloc[30]
    assert check_rules(bars, jump_bound=3.5)["price_jump"].iloc[30]


def test_a_high_print_beyond_the_bound_is_a_jump() -> None:
    bars = make_bars(40, seed=3)
    bars.iloc[30, bars.columns.get_loc("high")] = bars["close"].iloc[29] * 3.2
    flags = check_rules(bars)
    assert flags.index[flags["price_jump"]].tolist() == [bars.index[30]]
    assert not flags["possible_split"].any()
