"""No look-ahead: changing bars after t never changes positions or equity up to t."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import Costs, get_strategy, list_strategies, run_backtest
from quant_pipelines_tests._bars import make_bars, perturb_after

SHORT_PARAMS = {
    "sma_crossover": {"fast": 3, "slow": 8},
    "ema_crossover": {"fast": 3, "slow": 8},
    "momentum": {"lookback": 5, "threshold": 0.01},
    "rsi_mean_reversion": {"window": 5, "lower": 40.0, "upper": 60.0},
    "bollinger_reversion": {"window": 6, "num_std": 1.0},
    "donchian_breakout": {"window": 6, "exit_window": 3},
}


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(SHORT_PARAMS)),
    n=st.integers(2, 80),
    seed=st.integers(0, 10_000),
    cut=st.floats(0.0, 1.0),
    short=st.booleans(),
)
def test_strategy_positions_do_not_look_ahead(
    name: str, n: int, seed: int, cut: float, short: bool
) -> None:
    strat = get_strategy(name)
    bars = make_bars(n, seed)
    t = int(cut * (n - 1))
    params = {**SHORT_PARAMS[name], "allow_short": short}
    before = strat.positions(bars, **params)
    after = strat.positions(perturb_after(bars, t, seed), **params)
    pd.testing.assert_series_equal(before.iloc[: t + 1], after.iloc[: t + 1])
    assert np.isfinite(before.to_numpy()).all()


def test_every_registered_strategy_is_covered() -> None:
    assert set(list_strategies()) == set(SHORT_PARAMS)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 10_000), cut=st.floats(0.0, 1.0))
def test_engine_equity_does_not_look_ahead(n: int, seed: int, cut: float) -> None:
    """Equity up to t depends on bars up to t and targets up to t-1 only."""
    bars = make_bars(n, seed, vol=0.05)
    t = int(cut * (n - 1))
    rng = np.random.default_rng(seed)
    pos = rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0], n)
    other = pos.copy()
    other[t:] = rng.choice([-2.0, 0.0, 2.0], n - t)
    costs = Costs(commission=0.002, slippage_bps=10.0)
    a = run_backtest(bars, pos, costs=costs, max_leverage=2.0)
    b = run_backtest(perturb_after(bars, t, seed), other, costs=costs, max_leverage=2.0)
    assert a.equity.iloc[: t + 1].tolist() == b.equity.iloc[: t + 1].tolist()
    assert a.units.iloc[: t + 1].tolist() == b.units.iloc[: t + 1].tolist()
