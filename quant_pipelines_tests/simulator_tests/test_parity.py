"""Parity: for any action sequence the simulator's equity equals ``run_backtest``'s, bit for bit.

Each test runs under both cost models: flat costs, and volume-share costs on thin bars (orders
beyond the participation cap fill over several opens, a zero trailing volume makes them wait).
The backtest gets all the bars up to the episode range's end (the trailing volume statistics
warm up on the bars before it, as in the env), with the env's targets from its start on; with
flat costs the backtest of the range alone agrees too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import Costs, run_backtest
from quant_pipelines.backtest.costs import CostModel, VolumeShareCosts
from quant_pipelines.simulator import TradingSimulator

MODELS = ("flat", "volume_share")


def _costs(model: str, commission: float = 0.001, slippage_bps: float = 5.0) -> CostModel:
    if model == "flat":
        return Costs(commission, slippage_bps)
    return VolumeShareCosts(commission, slippage_bps, impact=0.3, max_participation=0.05)


@pytest.fixture(scope="module", params=MODELS)
def model(request: pytest.FixtureRequest) -> str:
    """The cost model's name (each parity test runs under both)."""
    return request.param


@pytest.fixture(scope="module")
def model_bars(model: str, bars: pd.DataFrame, thin_bars: pd.DataFrame) -> pd.DataFrame:
    """The bars each model is tested on (thin volume for volume-share costs)."""
    return bars if model == "flat" else thin_bars


_ENVS: dict[tuple[Any, ...], TradingSimulator] = {}


def _env(bars: pd.DataFrame, costs: CostModel, **kwargs: Any) -> TradingSimulator:
    """A simulator, built once per setting (hypothesis examples reuse it; reset starts over)."""
    key = (id(bars), costs, *sorted(kwargs.items()))
    if key not in _ENVS:
        _ENVS[key] = TradingSimulator(bars, costs=costs, **kwargs)
    return _ENVS[key]


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


def _assert_parity(env: TradingSimulator, bars: pd.DataFrame, actions, costs: CostModel) -> None:
    equity, positions = _simulate(env, actions)
    s = env.start
    full = np.zeros(env.end)
    full[s : s + len(positions)] = positions  # positions[t]: target decided at bar t's close
    result = run_backtest(bars.iloc[: env.end], full, costs=costs)
    np.testing.assert_array_equal(equity, result.equity.to_numpy()[s : s + len(equity)])
    if isinstance(costs, Costs):  # flat costs do not look at the bars before the range
        window = run_backtest(bars.iloc[s : env.end], full[s:], costs=costs)
        np.testing.assert_array_equal(equity, window.equity.to_numpy()[: len(equity)])


@settings(max_examples=25, deadline=None)
@given(
    actions=st.lists(st.integers(0, 2), min_size=399, max_size=399),
    commission=st.sampled_from([0.0, 0.001, 0.01]),
    slippage_bps=st.sampled_from([0.0, 2.0, 25.0]),
)
def test_discrete_parity(
    model: str,
    model_bars: pd.DataFrame,
    actions: list[int],
    commission: float,
    slippage_bps: float,
) -> None:
    costs = _costs(model, commission, slippage_bps)
    _assert_parity(_env(model_bars, costs), model_bars, actions, costs)


@settings(max_examples=25, deadline=None)
@given(
    actions=st.lists(st.floats(-1.5, 1.5, allow_nan=False, width=32), min_size=399, max_size=399),
)
def test_continuous_parity(model: str, model_bars: pd.DataFrame, actions: list[float]) -> None:
    costs = _costs(model)
    env = _env(model_bars, costs, action_space="continuous")
    _assert_parity(env, model_bars, [np.array([a], dtype=np.float32) for a in actions], costs)


@pytest.mark.parametrize(("start", "end"), [(0, 400), (120, 400), (37, 222)])
def test_parity_on_a_sub_range(model: str, model_bars: pd.DataFrame, start: int, end: int) -> None:
    rng = np.random.default_rng(start)
    costs = _costs(model)
    env = TradingSimulator(model_bars, costs=costs, start=start, end=end)
    _assert_parity(env, model_bars, rng.integers(0, 3, end - start), costs)


def test_parity_up_to_a_drawdown_termination(model: str, crash_bars: pd.DataFrame) -> None:
    costs = _costs(model)
    env = TradingSimulator(crash_bars, costs=costs, max_drawdown=0.2)
    equity, positions = _simulate(env, [2] * 1000)
    assert len(equity) < len(crash_bars)  # terminated early
    full = np.zeros(len(crash_bars))
    full[: len(positions)] = positions
    result = run_backtest(crash_bars, full, costs=costs)
    np.testing.assert_array_equal(equity, result.equity.to_numpy()[: len(equity)])


def test_volume_share_orders_fill_in_parts_and_wait(thin_bars: pd.DataFrame) -> None:
    """The thin bars exercise the cap: a long order takes many opens, and none of it fills
    while the trailing volume is zero (decision bars 219..229, fills at bars 220..230)."""
    env = TradingSimulator(thin_bars, costs=_costs("volume_share"), start=200)
    env.reset(seed=0)
    units, pending = [], []
    for _ in range(60):  # step k fills at bar 201 + k
        env.step(2)  # stay long: one order, filled as the cap allows
        units.append(env._book.units)
        pending.append(env._book.pending)
    assert all(pending[:30]) and not pending[-1]  # cut by the cap for long, filled in the end
    assert 0.0 < units[0] < units[17] < units[18]
    np.testing.assert_array_equal(np.diff(units[18:30]), 0.0)  # bars 220..230: no volume
    assert units[30] > units[29]
