"""Strategy registry, parameters, search spaces and the vectorised targets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quant_pipelines.backtest import (
    CategoricalParam,
    Constraint,
    FloatParam,
    IntParam,
    SearchSpace,
    UnknownStrategyError,
    get_strategy,
    list_strategies,
)
from quant_pipelines.backtest.strategies import IndicatorCache
from quant_pipelines_tests._bars import make_bars

REQUIRED = {
    "sma_crossover",
    "ema_crossover",
    "rsi_mean_reversion",
    "bollinger_reversion",
    "donchian_breakout",
}


def test_registry_lists_the_required_strategies() -> None:
    assert set(list_strategies()) >= REQUIRED
    assert list_strategies() == sorted(list_strategies())


def test_unknown_strategy_error_lists_known_names() -> None:
    with pytest.raises(UnknownStrategyError, match="sma_crossover") as info:
        get_strategy("nope")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert "nope" in str(info.value)


@pytest.mark.parametrize("name", sorted(REQUIRED | {"momentum"}))
def test_strategy_contract(name: str) -> None:
    strat = get_strategy(name)
    bars = make_bars(400, 3)
    pos = strat.positions(bars)
    assert pos.index.equals(bars.index) and pos.dtype == np.float64
    assert set(np.unique(pos)) <= {0.0, 1.0}
    both = strat.positions(bars, allow_short=True)
    assert set(np.unique(both)) <= {-1.0, 0.0, 1.0}
    assert strat.family in {"trend", "mean_reversion", "breakout"}
    space = strat.search_space()
    assert set(space.names) <= set(strat.default_params())
    assert space.is_feasible(strat.default_params())
    sets = space.sample(20, seed=1)
    assert sets == space.sample(20, seed=1)
    assert all(space.is_feasible(p) for p in sets)
    assert all(q.contains(p[q.name]) for p in sets for q in space.params)
    json.dumps(space.to_dict())
    cache = IndicatorCache(bars)
    resolved = [strat.resolve_params(p) for p in sets]
    block = strat.targets_block(cache, resolved)
    for row, p in zip(block, resolved, strict=True):
        np.testing.assert_array_equal(row, strat.positions(bars, **p).to_numpy())


def test_unknown_parameter_is_rejected() -> None:
    with pytest.raises(ValueError, match="no parameter"):
        get_strategy("sma_crossover").positions(make_bars(10), fats=3)


def test_sma_crossover_by_hand() -> None:
    bars = make_bars(30, 0)
    pos = get_strategy("sma_crossover").positions(bars, fast=2, slow=4)
    c = bars["close"]
    expected = (c.rolling(2).mean() > c.rolling(4).mean()).astype(float)
    np.testing.assert_array_equal(pos.to_numpy(), expected.to_numpy())


def test_search_space_grid_and_constraints() -> None:
    space = SearchSpace(
        (
            IntParam("fast", 2, 10),
            IntParam("slow", 5, 20, step=5),
            CategoricalParam("m", ("a", "b")),
        ),
        (Constraint("fast", "<", "slow"),),
    )
    grid = space.grid(points=3)
    assert all(p["fast"] < p["slow"] for p in grid)
    assert {p["m"] for p in grid} == {"a", "b"}
    c = Constraint("fast", "<", "slow")
    assert c.violation({"fast": 3, "slow": 5}) <= 0
    assert c.violation({"fast": 5, "slow": 5}) > 0
    assert c.violation({"fast": 8, "slow": 5}) == 3
    assert Constraint("x", ">=", 1.5).is_satisfied({"x": 1.5})
    with pytest.raises(ValueError):
        Constraint("a", "==", "b")
    with pytest.raises(ValueError):
        FloatParam("x", 0.0, 1.0, step=0.1, log=True)
    assert all(0.1 <= v <= 10 for v in FloatParam("x", 0.1, 10.0, log=True).grid(4))
    assert IntParam("w", 1, 1000, log=True).grid(4) == [1, 10, 100, 1000]
