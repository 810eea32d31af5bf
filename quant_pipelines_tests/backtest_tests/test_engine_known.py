"""Hand-computed 2 to 5 bar cases: fills, costs, overnight gaps, shorts, leverage, ruin."""

from __future__ import annotations

import numpy as np
import pytest

from quant_pipelines.backtest import Costs, run_backtest
from quant_pipelines_tests._bars import bars_from_prices

FREE = Costs(commission=0.0, slippage_bps=0.0)


def test_target_fills_at_next_open_and_gap_earned_with_old_exposure() -> None:
    # Decide long at bar 0's close (100); fill at bar 1's open (110): the gap is not earned.
    bars = bars_from_prices([100, 110, 120], [100, 121, 132])
    res = run_backtest(bars, [1.0, 1.0, 1.0], costs=FREE, initial_equity=1000.0)
    units = 1000.0 / 110.0
    assert res.equity.tolist() == pytest.approx([1000.0, units * 121, units * 132])
    # The holding earns bar 2's gap (121 -> 120) with the old (long) exposure.
    assert res.units.tolist() == pytest.approx([0.0, units, units])


def test_last_target_is_never_filled() -> None:
    bars = bars_from_prices([100, 100], [100, 150])
    res = run_backtest(bars, [0.0, 1.0], costs=FREE, initial_equity=1000.0)
    assert res.equity.tolist() == [1000.0, 1000.0]
    assert res.metrics["n_trades"] == 0


def test_commission_and_slippage_on_entry_and_exit() -> None:
    costs = Costs(commission=0.01, slippage_bps=100.0)  # 1% commission, 1% slippage
    bars = bars_from_prices([100, 100, 100, 100], [100, 100, 100, 100])
    res = run_backtest(bars, [1.0, 1.0, 0.0, 0.0], costs=costs, initial_equity=1000.0)
    buy = 100 * 1.01
    units = 1000.0 / buy
    cash = 1000.0 - units * buy - 0.01 * units * buy  # = -10
    assert cash == pytest.approx(-10.0)
    e1 = cash + units * 100
    sell = 100 * 0.99
    cash2 = cash + units * sell - 0.01 * units * sell
    assert res.equity.tolist() == pytest.approx([1000.0, e1, e1, cash2])
    assert res.metrics["total_costs"] == pytest.approx(1000.0 - cash2)
    trade = res.trades.iloc[0]
    assert (trade["side"], trade["entry_price"], trade["exit_price"]) == ("long", buy, sell)
    assert trade["pnl"] == pytest.approx(cash2 - 1000.0)
    assert trade["bars_held"] == 2
    assert trade["entry_ts"] == bars.index[1] and trade["exit_ts"] == bars.index[3]


def test_short_position_profits_from_a_fall() -> None:
    bars = bars_from_prices([100, 100, 80], [100, 90, 80])
    res = run_backtest(bars, [-1.0, -1.0, -1.0], costs=FREE, initial_equity=1000.0)
    # Short 10 units at 100: cash 2000, equity = 2000 - 10 * close.
    assert res.equity.tolist() == pytest.approx([1000.0, 1100.0, 1200.0])
    assert res.trades["side"].tolist() == ["short"]
    assert bool(res.trades["is_open"].iloc[0])


def test_flip_long_to_short_splits_costs_between_trades() -> None:
    costs = Costs(commission=0.01, slippage_bps=0.0)
    bars = bars_from_prices([100, 100, 100, 100], [100, 100, 100, 100])
    res = run_backtest(bars, [1.0, -1.0, -1.0, -1.0], costs=costs, initial_equity=1000.0)
    t = res.trades
    assert t["side"].tolist() == ["long", "short"]
    # Long: 10 units, entry commission 10; closing leg at bar 2 pays 0.01 * 10 * 100 = 10.
    assert t["pnl"].iloc[0] == pytest.approx(-20.0)
    assert t["pnl"].sum() == pytest.approx(res.equity.iloc[-1] - 1000.0)


def test_unchanged_target_does_not_trade_or_pay_twice() -> None:
    costs = Costs(commission=0.01, slippage_bps=0.0)
    bars = bars_from_prices([100, 100, 200, 100, 100], [100, 100, 200, 100, 100])
    res = run_backtest(bars, [0.5] * 5, costs=costs, initial_equity=1000.0)
    # One fill at bar 1: 5 units for 500 + 5 commission; never rebalanced as prices move.
    assert res.units.tolist() == pytest.approx([0, 5, 5, 5, 5])
    assert res.equity.tolist() == pytest.approx([1000, 995, 1495, 995, 995])


def test_leverage_is_clipped_to_max_leverage() -> None:
    bars = bars_from_prices([100, 100, 110], [100, 100, 110])
    res = run_backtest(bars, [5.0, 5.0, 5.0], costs=FREE, initial_equity=1000.0, max_leverage=2.0)
    assert res.units.iloc[-1] == pytest.approx(20.0)
    assert res.equity.iloc[-1] == pytest.approx(1200.0)
    assert res.positions.max() == 2.0


def test_ruin_goes_flat_and_stays_flat() -> None:
    bars = bars_from_prices([100, 100, 160, 100, 50], [100, 100, 160, 100, 50])
    res = run_backtest(bars, [-2.0] * 5, costs=FREE, initial_equity=1000.0, max_leverage=2.0)
    # Short 20 units from bar 1: cash 3000; at 160 equity = 3000 - 3200 < 0 -> ruin.
    assert res.equity.tolist() == [1000.0, 1000.0, 0.0, 0.0, 0.0]
    assert res.ruined_at == bars.index[2]
    assert res.metrics["total_return"] == -1.0
    assert res.units.iloc[2:].eq(0).all()
    assert res.trades["pnl"].iloc[0] == pytest.approx(-1000.0)


def test_gap_through_zero_ruins_at_the_open() -> None:
    bars = bars_from_prices([100, 100, 250, 260], [100, 100, 90, 90])
    res = run_backtest(bars, [-1.0] * 4, costs=FREE, initial_equity=1000.0)
    # Equity at bar 2's open = 2000 - 10 * 250 < 0 even though the close would be positive.
    assert res.equity.tolist() == [1000.0, 1000.0, 0.0, 0.0]


def test_returns_and_metrics_of_a_known_path() -> None:
    bars = bars_from_prices([100, 100, 120, 90, 99], [100, 100, 120, 90, 99])
    res = run_backtest(bars, [1.0] * 5, costs=FREE, initial_equity=100.0)
    assert res.returns.tolist() == pytest.approx([0.0, 0.0, 0.2, -0.25, 0.1])
    m = res.metrics
    assert m["total_return"] == pytest.approx(-0.01)
    assert m["max_drawdown"] == pytest.approx(-0.25)
    assert m["max_drawdown_duration"] == 2
    assert m["buy_and_hold_return"] == pytest.approx(-0.01)
    assert m["exposure"] == pytest.approx(4 / 5)
    r = np.array([0.0, 0.2, -0.25, 0.1])
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252))
    assert m["sortino"] == pytest.approx(
        r.mean() / np.sqrt((np.minimum(r, 0) ** 2).mean()) * np.sqrt(252)
    )
