"""Parity: for any action sequence the simulator's equity equals ``run_backtest``'s, to 1e-9."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import Costs, run_backtest
from quant_pipelines.simulator import TradingSimulator


def _simulate(env: TradingSimulator, actions) -> tuple[np.ndarray, np.ndarray]:
    """Equity after reset and every step, and the positions the actions stand for."""
    _, info = env.reset(seed=0)
    equity, positions = [info["equity"]], []
    for a in actions:
        positions.append(env.target_of(a))
        _, _, terminated, truncated, info = env.step(a)
        equity.append(info["equity"])
        if terminated or truncated:
            break
    return np.array(equity), np.array(positions)


def _assert_parity(env: TradingSimulator, bars: pd.DataFrame, actions, costs: Costs) -> None:
    equity, positions = _simulate(env, actions)
    window = bars.iloc[env.start : env.end]
    full = np.zeros(len(window))
    full[: len(positions)] = positions  # positions[t]: target decided at bar t's close
    result = run_backtest(window, full, costs=costs)
    np.testing.assert_allclose(equity, result.equity.to_numpy(), rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    actions=st.lists(st.integers(0, 2), min_size=399, max_size=399),
    commission=st.sampled_from([0.0, 0.001, 0.01]),
    slippage_bps=st.sampled_from([0.0, 2.0, 25.0]),
)
def test_discrete_parity(
    bars: pd.DataFrame, actions: list[int], commission: float, slippage_bps: float
) -> None:
    costs = Costs(commission, slippage_bps)
    _assert_parity(TradingSimulator(bars, costs=costs), bars, actions, costs)


@settings(max_examples=25, deadline=None)
@given(
    actions=st.lists(st.floats(-1.5, 1.5, allow_nan=False, width=32), min_size=399, max_size=399),
)
def test_continuous_parity(bars: pd.DataFrame, actions: list[float]) -> None:
    costs = Costs(0.001, 5.0)
    env = TradingSimulator(bars, costs=costs, action_space="continuous")
    _assert_parity(env, bars, [np.array([a], dtype=np.float32) for a in actions], costs)


@pytest.mark.parametrize(("start", "end"), [(0, 400), (120, 400), (37, 222)])
def test_parity_on_a_sub_range(bars: pd.DataFrame, start: int, end: int) -> None:
    rng = np.random.default_rng(start)
    costs = Costs()
    env = TradingSimulator(bars, costs=costs, start=start, end=end)
    _assert_parity(env, bars, rng.integers(0, 3, end - start), costs)


def test_parity_up_to_a_drawdown_termination(crash_bars: pd.DataFrame) -> None:
    costs = Costs()
    env = TradingSimulator(crash_bars, costs=costs, max_drawdown=0.2)
    equity, positions = _simulate(env, [2] * 1000)
    assert len(equity) < len(crash_bars)  # terminated early
    full = np.zeros(len(crash_bars))
    full[: len(positions)] = positions
    result = run_backtest(crash_bars, full, costs=costs)
    np.testing.assert_allclose(equity, result.equity.to_numpy()[: len(equity)], rtol=0, atol=1e-9)
