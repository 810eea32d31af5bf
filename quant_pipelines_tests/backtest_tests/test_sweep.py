"""sweep equals run_backtest for every parameter set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest import Costs, get_strategy, run_backtest, sweep
from quant_pipelines.backtest._assemble import METRIC_KEYS
from quant_pipelines_tests._bars import make_bars


def _assert_rows_match(bars, name, sets, table, **kw) -> None:
    strat = get_strategy(name)
    for i, p in enumerate(sets):
        m = run_backtest(bars, strat.positions(bars, **p), **kw).metrics
        for k in METRIC_KEYS:
            assert table[k].iloc[i] == pytest.approx(m[k], rel=1e-9, abs=1e-12), (i, k)


STRATEGIES = [
    "sma_crossover",
    "ema_crossover",
    "rsi_mean_reversion",
    "bollinger_reversion",
    "donchian_breakout",
    "momentum",
]


@pytest.mark.parametrize("name", STRATEGIES)
def test_sweep_equals_single_runs(name: str) -> None:
    bars = make_bars(700, 11, vol=0.02)
    strat = get_strategy(name)
    sets = strat.search_space().sample(150, seed=5)
    sets += [{**p, "allow_short": True} for p in sets[:30]]
    costs = Costs(commission=0.001, slippage_bps=3.0)
    table = sweep(bars, name, sets, costs=costs, block_size=64)
    assert len(table) == len(sets) and list(table.columns[-len(METRIC_KEYS) :]) == list(METRIC_KEYS)
    _assert_rows_match(bars, name, sets[::7], table.iloc[::7], costs=costs)
    assert table["n_trades"].dtype == np.int64


def test_sweep_reruns_ruined_sets_exactly() -> None:
    bars = make_bars(300, 2, vol=0.01, drift=-0.003)
    cols = ["open", "high", "low", "close"]
    bars.loc[bars.index[150:], cols] *= 3.0  # a gap that ruins any short book
    sets = [{"fast": f, "slow": s, "allow_short": a} for f, s in [(2, 5), (3, 9), (5, 20)]
            for a in (False, True)]  # fmt: skip
    kw = {"costs": Costs(0.001, 2.0), "max_leverage": 1.0}
    table = sweep(bars, "sma_crossover", sets, **kw)
    _assert_rows_match(bars, "sma_crossover", sets, table, **kw)
    assert (table["total_return"] == -1.0).sum() == 3  # the three short-enabled sets
    assert (table["total_return"] > -1.0).sum() == 3


def test_sweep_eval_range_matches_sliced_backtest() -> None:
    bars = make_bars(500, 8)
    strat = get_strategy("donchian_breakout")
    sets = strat.search_space().sample(10, seed=2)
    table = sweep(bars, strat, sets, eval_range=(200, 420))
    for i, p in enumerate(sets):
        pos = strat.positions(bars, **p).iloc[200:420]
        m = run_backtest(bars.iloc[200:420], pos).metrics
        assert table["sharpe"].iloc[i] == pytest.approx(m["sharpe"], rel=1e-9, abs=1e-12)
        assert table["final_equity"].iloc[i] == pytest.approx(m["final_equity"], rel=1e-12)


def test_sweep_edge_cases() -> None:
    bars = make_bars(50, 1)
    empty = sweep(bars, "sma_crossover", [])
    assert empty.empty and "sharpe" in empty.columns
    one_bar = sweep(bars.iloc[:1], "sma_crossover", [{"fast": 2, "slow": 3}])
    assert one_bar["total_return"].iloc[0] == 0.0
    with pytest.raises(ValueError, match="eval_range"):
        sweep(bars, "sma_crossover", [{}], eval_range=(10, 10))
    defaults = sweep(bars, "sma_crossover", [{}])
    assert defaults[["fast", "slow"]].iloc[0].tolist() == [10, 50]
    assert isinstance(defaults, pd.DataFrame)
