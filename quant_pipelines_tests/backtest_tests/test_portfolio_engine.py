"""The portfolio engine on hand-computed books, rebalance rules, and bad input."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest.costs import FlatCosts, VolumeShareCosts
from quant_pipelines.backtest.portfolio import DriftBand, run_portfolio_backtest
from quant_pipelines_tests._bars import make_bars

FREE = FlatCosts(0.0, 0.0)
DAYS = pd.date_range("2024-03-01", periods=5, freq="D", tz="UTC", name="ts")


def _frame(days: pd.DatetimeIndex, opens: list[float], closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"open": opens, "high": np.maximum(opens, closes), "low": np.minimum(opens, closes),
         "close": closes, "volume": 1e6},
        index=days,
    )  # fmt: skip


def _two_calendars() -> dict[str, pd.DataFrame]:
    """A trades every day; B has no session on days 1 and 3."""
    return {
        "A": _frame(DAYS, [100, 100, 110, 121, 121], [100, 110, 121, 121, 133.1]),
        "B": _frame(DAYS[[0, 2, 4]], [50, 60, 70], [50, 60, 77]),
    }


def _universe(n: int = 120, k: int = 3, seed: int = 0) -> dict[str, pd.DataFrame]:
    return {f"S{j}": make_bars(n, seed + j, vol=0.02, drift=0.001 * j) for j in range(k)}


def _equal(bars: dict[str, pd.DataFrame], value: float | None = None) -> pd.DataFrame:
    index = next(iter(bars.values())).index
    w = 1.0 / len(bars) if value is None else value
    return pd.DataFrame(w, index=index, columns=list(bars))


def test_missing_sessions_wait_and_are_marked_at_the_last_close() -> None:
    bars = _two_calendars()
    weights = pd.DataFrame(0.5, index=DAYS, columns=["A", "B"])
    res = run_portfolio_backtest(bars, weights, costs=FREE, initial_equity=1000.0)
    # Day 1: A buys 5 at 100; B has no session, its order waits. Day 2: equity at the open is
    # 500 + 5 * 110 = 1050, B buys 0.5 * 1050 / 60 = 8.75. Day 3: B is marked at 60.
    np.testing.assert_allclose(res.equity, [1000, 1050, 1105, 1105, 1314.25], rtol=1e-12)
    np.testing.assert_allclose(res.positions["B"], [0, 0, 8.75, 8.75, 8.75])
    assert res.weights["B"].iloc[3] == pytest.approx(525.0 / 1105.0)
    assert list(res.fills["ts"]) == [DAYS[1], DAYS[2]]
    np.testing.assert_allclose(res.benchmark, [1000, 1050, 1205, 1205, 1435.5], rtol=1e-12)
    m = res.metrics
    assert m["buy_and_hold_return"] == pytest.approx(0.4355)
    assert m["avg_holdings"] == pytest.approx(7 / 5)
    assert m["exposure"] == pytest.approx(4 / 5)
    assert m["total_costs"] == 0.0
    contrib = res.contributions
    assert contrib.loc["B", "pnl"] == pytest.approx(8.75 * (77 - 60))
    assert contrib["pnl"].sum() == pytest.approx(314.25)


def test_weights_off_a_calendar_are_reported_clearly() -> None:
    bars = _two_calendars()
    with pytest.raises(ValueError, match="union of the bars' sessions"):
        run_portfolio_backtest(bars, pd.DataFrame(0.5, index=DAYS[:4], columns=["A", "B"]))


def test_nan_weight_names_the_date_and_symbol() -> None:
    bars = _universe(30)
    weights = _equal(bars)
    weights.iloc[17, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape(f"'S1' at {weights.index[17]}")):
        run_portfolio_backtest(bars, weights)
    weights.iloc[17, 1] = np.inf
    with pytest.raises(ValueError, match="'S1'"):
        run_portfolio_backtest(bars, weights)


def test_a_symbol_without_bars_is_named() -> None:
    bars = _universe(30)
    weights = _equal(bars).assign(ZZZ=0.0)
    with pytest.raises(ValueError, match=r"'ZZZ'.*no bars"):
        run_portfolio_backtest(bars, weights)


@pytest.mark.parametrize("column", ["open", "close"])
def test_bars_missing_a_column_are_named(column: str) -> None:
    bars = _universe(30)
    bars["S2"] = bars["S2"].drop(columns=column)
    with pytest.raises(ValueError, match=rf"bars of 'S2'.*'{column}'"):
        run_portfolio_backtest(bars, _equal(bars))


def test_volume_share_costs_need_volume_per_symbol() -> None:
    bars = _universe(30)
    bars["S1"] = bars["S1"].drop(columns="volume")
    with pytest.raises(ValueError, match=r"bars of 'S1'.*'volume'"):
        run_portfolio_backtest(bars, _equal(bars), costs=VolumeShareCosts())
    run_portfolio_backtest(bars, _equal(bars), costs={"S0": VolumeShareCosts(), "S1": FREE,
                                                       "S2": VolumeShareCosts()})  # fmt: skip
    with pytest.raises(ValueError, match="no model for symbol 'S2'"):
        run_portfolio_backtest(bars, _equal(bars), costs={"S0": FREE, "S1": FREE})


def test_bad_parameters_are_rejected() -> None:
    bars = _universe(30)
    with pytest.raises(ValueError, match="unknown rebalance rule"):
        run_portfolio_backtest(bars, _equal(bars), rebalance="hourly")
    with pytest.raises(ValueError, match="threshold"):
        DriftBand(0.0)
    with pytest.raises(ValueError, match="max_gross_leverage"):
        run_portfolio_backtest(bars, _equal(bars), max_gross_leverage=0.0)
    with pytest.raises(TypeError, match="weights must be a DataFrame"):
        run_portfolio_backtest(bars, _equal(bars)["S0"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="FlatCosts or VolumeShareCosts"):
        run_portfolio_backtest(bars, _equal(bars), costs=0.001)  # type: ignore[arg-type]


def test_rows_beyond_the_gross_cap_are_scaled_down_in_proportion() -> None:
    bars = _universe(60)
    heavy = _equal(bars, 1.0)
    heavy["S2"] = -1.0  # gross 3 against a cap of 2: every weight times 2/3
    res = run_portfolio_backtest(bars, heavy, max_gross_leverage=2.0)
    np.testing.assert_allclose(res.targets.to_numpy(), heavy.to_numpy() * 2.0 / 3.0, rtol=1e-15)
    same = run_portfolio_backtest(bars, heavy * 2.0 / 3.0, max_gross_leverage=2.0)
    np.testing.assert_allclose(res.equity, same.equity, rtol=1e-12)


def test_long_only_takes_negative_weights_as_flat() -> None:
    bars = _universe(60)
    weights = _equal(bars, 0.3)
    weights["S1"] = -0.3
    res = run_portfolio_backtest(bars, weights, allow_short=False)
    assert (res.positions["S1"] == 0.0).all()
    flat = run_portfolio_backtest(bars, weights.clip(lower=0.0))
    assert res.equity.tolist() == flat.equity.tolist()


@pytest.mark.parametrize("rule", ["weekly", "monthly"])
def test_calendar_rebalances_fill_after_the_first_bar_of_each_period(rule: str) -> None:
    bars = _universe(100)
    res = run_portfolio_backtest(bars, _equal(bars), rebalance=rule)
    index = res.equity.index
    key = index.isocalendar().week.to_numpy() if rule == "weekly" else index.month.to_numpy()
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    want = {index[i + 1] for i in first if i + 1 < len(index)}
    assert set(res.fills["ts"]) == want
    daily = run_portfolio_backtest(bars, _equal(bars), rebalance="daily")
    assert set(daily.fills["ts"]) == set(index[1:])
    assert daily.metrics["turnover"] > res.metrics["turnover"]


def test_drift_band_trades_only_when_a_weight_drifts_beyond_it() -> None:
    bars = _universe(250, k=2, seed=7)
    bars["S1"] = make_bars(250, 99, vol=0.02, drift=0.004)  # runs away from S0
    res = run_portfolio_backtest(bars, _equal(bars), rebalance=DriftBand(0.05), costs=FREE)
    drift = (res.weights - 0.5).abs().max(axis=1).to_numpy()
    traded = res.equity.index.isin(res.fills["ts"])
    expect = np.r_[True, drift[:-1] > 0.05]  # bar 0's close orders the first purchase
    np.testing.assert_array_equal(traded[1:], expect[1:])
    assert 2 <= traded.sum() < 60


def test_ruin_leaves_the_book_flat_and_the_trades_add_up_to_minus_the_capital() -> None:
    bars = _universe(40, k=2)
    for s in bars:
        bars[s].loc[bars[s].index[20:], ["open", "high", "low", "close"]] *= 3.0
    weights = _equal(bars, -1.5)
    res = run_portfolio_backtest(bars, weights, max_gross_leverage=3.0, initial_equity=1e4)
    assert res.ruined_at == bars["S0"].index[20]
    assert (res.equity.iloc[20:] == 0.0).all() and (res.positions.iloc[20:] == 0.0).all().all()
    assert res.trades["pnl"].sum() == pytest.approx(-1e4)
    assert res.contributions["pnl"].sum() == pytest.approx(-1e4)
    assert res.metrics["final_equity"] == 0.0 and res.metrics["cagr"] == -1.0


def test_costs_are_charged_per_symbol() -> None:
    bars = _universe(60)
    costs = {"S0": FREE, "S1": FlatCosts(0.01, 0.0), "S2": FlatCosts(0.0, 50.0)}
    res = run_portfolio_backtest(bars, _equal(bars), costs=costs, rebalance="weekly")
    paid = res.costs_paid
    assert paid["S0"] == 0.0 and paid["S1"] > 0.0 and paid["S2"] > 0.0
    assert paid.sum() == pytest.approx(res.metrics["total_costs"])
    fills = res.fills
    s1 = fills[fills["symbol"] == "S1"]
    np.testing.assert_allclose(s1["commission"], 0.01 * s1["notional"], rtol=1e-12)
    assert (fills.loc[fills["symbol"] == "S2", "slippage_cost"] > 0).all()


def test_volume_share_orders_carry_over_within_the_portfolio() -> None:
    bars = _universe(40, k=2)
    for s in bars:
        bars[s]["volume"] = 50.0
    costs = VolumeShareCosts(commission=0.0, slippage_bps=0.0, impact=0.1, max_participation=0.5)
    res = run_portfolio_backtest(bars, _equal(bars), costs=costs, initial_equity=1e5)
    fills = res.fills
    assert (fills["units_after"] - fills["units_before"]).abs().max() <= 25.0 + 1e-9
    assert len(fills) > 10  # ~500 units wanted per symbol, at most 25 a bar
    assert (fills["price"] >= fills["open"]).all()  # impact against the buyer, once the
    assert (fills["price"] > fills["open"]).mean() > 0.8  # trailing volatility is known
