"""Degenerate inputs get a clear error or a documented result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest import Costs, run_backtest
from quant_pipelines.backtest.engine import bar_arrays
from quant_pipelines_tests._bars import bars_from_prices, make_bars


def test_empty_bars_raise() -> None:
    bars = make_bars(3).iloc[:0]
    with pytest.raises(ValueError, match="empty"):
        run_backtest(bars, [])


def test_one_bar_gives_flat_result() -> None:
    bars = make_bars(1)
    res = run_backtest(bars, [1.0])
    assert res.equity.tolist() == [100_000.0]
    m = res.metrics
    assert m["total_return"] == 0.0 and m["sharpe"] == 0.0 and m["n_trades"] == 0
    assert m["max_drawdown"] == 0.0 and m["buy_and_hold_return"] == 0.0


def test_constant_prices_only_lose_costs() -> None:
    bars = bars_from_prices([50.0] * 6, [50.0] * 6)
    res = run_backtest(bars, [1, 1, 0, 0, 1, 1], costs=Costs(commission=0.001, slippage_bps=0))
    assert res.metrics["total_return"] < 0
    assert res.metrics["buy_and_hold_return"] == 0.0
    free = run_backtest(bars, [1, 1, 0, 0, 1, 1], costs=Costs(0.0, 0.0))
    assert free.equity.eq(100_000.0).all()
    assert free.metrics["sharpe"] == 0.0 and free.metrics["annual_volatility"] == 0.0


def test_all_flat_positions() -> None:
    bars = make_bars(50, 2)
    res = run_backtest(bars, np.zeros(50))
    assert res.equity.eq(100_000.0).all()
    assert res.trades.empty and list(res.trades.columns)[:8] == [
        "entry_ts", "exit_ts", "entry_price", "exit_price", "side", "pnl", "return", "bars_held",
    ]  # fmt: skip
    m = res.metrics
    assert (m["n_trades"], m["exposure"], m["turnover"], m["win_rate"]) == (0, 0.0, 0.0, 0.0)
    assert m["profit_factor"] == 0.0 and m["sortino"] == 0.0 and m["calmar"] == 0.0


def test_nan_positions_raise_with_the_timestamp() -> None:
    bars = make_bars(5)
    pos = pd.Series([0.0, 1.0, np.nan, 1.0, 0.0], index=bars.index)
    with pytest.raises(ValueError, match="NaN"):
        run_backtest(bars, pos)


def test_misaligned_index_raises() -> None:
    bars = make_bars(5)
    pos = pd.Series(1.0, index=bars.index + pd.Timedelta("1h"))
    with pytest.raises(ValueError, match="index"):
        run_backtest(bars, pos)
    with pytest.raises(ValueError, match="one value per bar"):
        run_backtest(bars, [1.0, 1.0])
    with pytest.raises(TypeError):
        run_backtest(bars, pos.to_frame())


@pytest.mark.parametrize(
    ("column", "value"), [("open", 0.0), ("close", -1.0), ("open", np.nan), ("close", np.inf)]
)
def test_bad_prices_raise(column: str, value: float) -> None:
    bars = make_bars(5)
    bars.iloc[2, bars.columns.get_loc(column)] = value
    with pytest.raises(ValueError, match=column):
        run_backtest(bars, np.ones(5))


def test_unsorted_or_duplicated_index_raises() -> None:
    bars = make_bars(5)
    with pytest.raises(ValueError, match="sorted"):
        bar_arrays(bars.iloc[::-1])
    with pytest.raises(ValueError, match="unique"):
        bar_arrays(pd.concat([bars, bars.iloc[-1:]]))


def test_bad_arguments_raise() -> None:
    bars = make_bars(5)
    with pytest.raises(TypeError):
        run_backtest(bars.to_numpy(), np.ones(5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_leverage"):
        run_backtest(bars, np.ones(5), max_leverage=0.0)
    with pytest.raises(ValueError, match="initial_equity"):
        run_backtest(bars, np.ones(5), initial_equity=-1.0)
    with pytest.raises(ValueError, match="asset_class"):
        run_backtest(bars, np.ones(5), asset_class="bonds")
    with pytest.raises(ValueError, match="commission"):
        Costs(commission=-0.1)


@pytest.mark.parametrize(("asset_class", "ppy"), [("equity", 252), ("crypto", 365), ("fx", 260)])
def test_annualisation_by_asset_class(asset_class: str, ppy: float) -> None:
    bars = make_bars(100, 4)
    res = run_backtest(bars, np.ones(100), asset_class=asset_class)
    assert res.periods_per_year == ppy
    r = res.returns.to_numpy()[1:]
    assert res.metrics["annual_volatility"] == pytest.approx(r.std(ddof=1) * np.sqrt(ppy))
    custom = run_backtest(bars, np.ones(100), periods_per_year=12, asset_class=asset_class)
    assert custom.periods_per_year == 12
