"""run_backtest against the independent bar-by-bar reference and the step-wise fills.Book."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import Book, Costs, run_backtest
from quant_pipelines_tests._bars import make_bars
from quant_pipelines_tests.backtest_tests._reference import reference_equity

TARGETS = st.sampled_from([-3.0, -2.0, -1.0, -0.5, 0.0, 0.0, 0.3, 0.5, 1.0, 1.0, 1.5, 2.0, 3.0])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(1, 60))
    bars = make_bars(
        n,
        draw(st.integers(0, 10_000)),
        vol=draw(st.sampled_from([0.0, 0.01, 0.05, 0.3])),
        gap_vol=draw(st.sampled_from([0.0, 0.01, 0.2])),
    )
    targets = draw(st.lists(TARGETS, min_size=n, max_size=n))
    costs = Costs(
        commission=draw(st.sampled_from([0.0, 0.001, 0.01])),
        slippage_bps=draw(st.sampled_from([0.0, 2.0, 25.0])),
    )
    leverage = draw(st.sampled_from([1.0, 2.0, 3.0]))
    return bars, targets, costs, leverage


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(scenarios())
def test_engine_matches_reference_loop(case: tuple) -> None:
    bars, targets, costs, leverage = case
    res = run_backtest(bars, targets, costs=costs, max_leverage=leverage)
    ref = reference_equity(
        bars["open"].tolist(),
        bars["close"].tolist(),
        targets,
        commission=costs.commission,
        slippage_bps=costs.slippage_bps,
        max_leverage=leverage,
    )
    np.testing.assert_allclose(res.equity.to_numpy(), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_engine_matches_stepwise_book_exactly(case: tuple) -> None:
    """The simulator's Book, stepped bar by bar, reproduces the engine bit for bit."""
    bars, targets, costs, leverage = case
    res = run_backtest(bars, targets, costs=costs, max_leverage=leverage)
    book = Book(costs=costs, max_leverage=leverage)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    curve = [book.step(targets[k - 1] if k else 0.0, o[k], c[k]) for k in range(len(bars))]
    assert curve == res.equity.tolist()
    assert book.units == res.units.iloc[-1]


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_trades_add_up_to_the_equity_change(case: tuple) -> None:
    bars, targets, costs, leverage = case
    res = run_backtest(bars, targets, costs=costs, max_leverage=leverage)
    trades = res.trades
    change = res.equity.iloc[-1] - 100_000.0
    if res.ruined_at is None:
        assert trades["pnl"].sum() == pytest.approx(change, rel=1e-9, abs=1e-6)
    else:  # the equity curve stops at zero; a trade's own loss may go beyond it
        assert trades["pnl"].sum() <= change + 1e-6
    assert (trades["bars_held"] >= 1).all()
    assert set(trades["side"]) <= {"long", "short"}
    assert trades["is_open"].sum() <= 1
    assert res.metrics["n_trades"] == len(trades)


def test_long_run_matches_reference_with_costs_and_shorts() -> None:
    bars = make_bars(3_000, 7, vol=0.02)
    rng = np.random.default_rng(3)
    targets = np.repeat(rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0], 300), 10)
    costs = Costs(commission=0.002, slippage_bps=5.0)
    res = run_backtest(bars, pd.Series(targets, index=bars.index), costs=costs, max_leverage=2.0)
    ref = reference_equity(
        bars["open"].tolist(), bars["close"].tolist(), targets.tolist(),
        commission=0.002, slippage_bps=5.0, max_leverage=2.0,
    )  # fmt: skip
    np.testing.assert_allclose(res.equity.to_numpy(), ref, rtol=1e-9)
