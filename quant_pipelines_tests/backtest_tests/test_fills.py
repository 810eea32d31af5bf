"""The shared fill model: rebalance and the step-wise Book."""

from __future__ import annotations

import math

import pytest

from quant_pipelines.backtest import Book, Costs, rebalance


def test_buy_from_flat_pays_slippage_and_commission() -> None:
    f = rebalance(0.0, 1000.0, 1.0, 100.0, Costs(commission=0.001, slippage_bps=10.0))
    assert f.price == pytest.approx(100.1)
    assert f.units == pytest.approx(1000.0 / 100.1)
    assert f.commission == pytest.approx(0.001 * 1000.0)
    assert f.cash == pytest.approx(-1.0)
    assert f.equity == 1000.0


def test_sell_to_short_gets_the_lower_price() -> None:
    f = rebalance(5.0, 500.0, -1.0, 100.0, Costs(commission=0.0, slippage_bps=100.0))
    assert f.price == pytest.approx(99.0)
    assert f.units == pytest.approx(-1000.0 / 99.0)
    assert f.cash == pytest.approx(500.0 + (5.0 + 1000.0 / 99.0) * 99.0)


def test_target_inside_the_slippage_band_does_not_trade() -> None:
    # Holding 10 units at 100 with cash 0: target 1.0 needs 10 units at the mid price, but
    # buying at 101 gives fewer and selling at 99 gives more: no trade.
    f = rebalance(10.0, 0.0, 1.0, 100.0, Costs(commission=0.01, slippage_bps=100.0))
    assert (f.units, f.cash, f.commission, f.price) == (10.0, 0.0, 0.0, 100.0)


def test_book_applies_in_force_target_and_ruin() -> None:
    book = Book(initial_equity=1000.0, costs=Costs(0.0, 0.0), max_leverage=2.0)
    assert book.step(0.0, 100.0, 100.0) == 1000.0
    assert book.step(-5.0, 100.0, 120.0) == pytest.approx(1000.0 - 20 * 20)  # clipped to -2
    assert book.open(-2.0, 120.0) is None  # unchanged target: no trade
    assert book.mark(160.0) == 0.0 and book.ruined
    assert book.step(1.0, 50.0, 50.0) == 0.0 and book.units == 0.0
    with pytest.raises(ValueError, match="NaN"):
        Book().clip(math.nan)
    with pytest.raises(ValueError):
        Book(initial_equity=0.0)
