"""Portfolio strategies: registry, search spaces, hand-checked picks, real data, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest import UnknownStrategyError, get_strategy, list_strategies
from quant_pipelines.backtest.portfolio._xs_base import REGISTRY
from quant_pipelines.backtest.portfolio._xs_panel import rebalance_mask
from quant_pipelines.backtest.portfolio.strategies import (
    PORTFOLIO_STRATEGIES,
    UnknownPortfolioStrategyError,
    get_portfolio_strategy,
    list_portfolio_strategies,
    portfolio_weights,
)
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines_tests._bars import goog_bars, make_bars

CORE = {
    "xs_momentum",
    "xs_mean_reversion",
    "equal_weight",
    "inverse_vol",
    "risk_parity",
    "min_variance",
}


def _geometric(rates: dict[str, float], n: int = 8) -> dict[str, pd.DataFrame]:
    """Symbols whose close grows by a fixed rate per bar (open = previous close)."""
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="ts")
    out = {}
    for s, g in rates.items():
        close = 100.0 * (1.0 + g) ** np.arange(1, n + 1)
        opens = np.r_[100.0, close[:-1]]
        out[s] = pd.DataFrame(
            {
                "open": opens,
                "high": np.maximum(opens, close),
                "low": np.minimum(opens, close),
                "close": close,
                "volume": 1.0,
            },
            index=index,
        )
    return out


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    """Real GOOG bars and seeded synthetic equities on the same (date-stamped) sessions."""
    src = SyntheticSource(5)
    out = {"GOOG": goog_bars().loc["2010-01-01":]}
    for s in ("AAPL", "MSFT", "SPY", "NVDA"):
        b = src.bars(s, "2010-01-01", "2013-03-01")
        b.index = b.index.normalize()
        out[s] = b
    return out


def test_registry_holds_every_family() -> None:
    names = list_portfolio_strategies()
    assert names == sorted(names) and set(PORTFOLIO_STRATEGIES) == set(names)
    assert set(names) >= CORE | {f"signal_{s}" for s in list_strategies()}
    for name in names:
        assert get_portfolio_strategy(name).name == name


def test_unknown_strategy_is_named() -> None:
    with pytest.raises(UnknownPortfolioStrategyError, match=r"'xs_nope'.*xs_momentum") as info:
        get_portfolio_strategy("xs_nope")
    assert isinstance(info.value, UnknownStrategyError) and isinstance(info.value, KeyError)
    with pytest.raises(UnknownPortfolioStrategyError, match="signal_nope"):
        portfolio_weights("signal_nope", {})


def test_signal_strategies_resolve_on_demand() -> None:
    saved = REGISTRY.pop("signal_sma_crossover")
    try:
        again = get_portfolio_strategy("signal_sma_crossover")
        assert again is not saved and again.signal is get_strategy("sma_crossover")
        assert "signal_sma_crossover" in PORTFOLIO_STRATEGIES
    finally:
        REGISTRY["signal_sma_crossover"] = saved


@pytest.mark.parametrize(
    "name", sorted(CORE | {"signal_sma_crossover", "signal_rsi_mean_reversion"})
)
def test_strategy_contract(name: str) -> None:
    strat = get_portfolio_strategy(name)
    space = strat.search_space()
    defaults = strat.default_params()
    assert set(space.names) <= set(defaults) and space.is_feasible(defaults)
    sets = space.sample(10, seed=3)
    assert sets == space.sample(10, seed=3)
    assert all(space.is_feasible(p) and strat.resolve_params(p) for p in sets)
    assert space.to_dict()["params"]
    bars = {f"S{i}": make_bars(90, 40 + i, vol=0.01 * (1 + i)) for i in range(4)}
    params = {"risk_window": 10} if "risk_window" in defaults else {}
    if "lookback" in defaults:
        params |= {"lookback": 20, "skip": 2}
    w = strat.weights(bars, **params)
    assert list(w.columns) == list(bars) and w.index.equals(bars["S0"].index)
    x = w.to_numpy()
    gross = np.abs(x).sum(axis=1)
    assert np.isfinite(x).all() and (np.isclose(gross, 0.0) | np.isclose(gross, 1.0)).all()
    assert np.isclose(gross, 1.0).any()


def test_momentum_top_k_picks_the_fastest_risers() -> None:
    bars = _geometric({"A": 0.01, "B": 0.03, "C": -0.01, "D": 0.02})
    base = {"lookback": 3, "skip": 1, "rebalance": "daily"}
    w = portfolio_weights("xs_momentum", bars, {**base, "k": 1})
    assert (w.iloc[:3].to_numpy() == 0).all()  # the first score needs lookback + 1 bars
    assert (w.iloc[3:]["B"] == 1.0).all() and (w.iloc[3:].drop(columns="B") == 0).all().all()
    w = portfolio_weights("xs_momentum", bars, {**base, "fraction": 0.5})
    assert w.iloc[-1].to_dict() == {"A": 0.0, "B": 0.5, "C": 0.0, "D": 0.5}
    w = portfolio_weights("xs_momentum", bars, {**base, "k": 1, "long_short": True})
    assert w.iloc[-1].to_dict() == {"A": 0.0, "B": 0.5, "C": -0.5, "D": 0.0}


def test_momentum_skips_the_most_recent_bars() -> None:
    bars = _geometric({"A": 0.01, "B": 0.02}, n=10)
    close = bars["A"]["close"].to_numpy().copy()
    close[-1] = close[-2] * 1.5  # A jumps on the last bar only
    bars["A"] = bars["A"].assign(close=close)
    params = {"lookback": 4, "k": 1, "rebalance": "daily"}
    assert portfolio_weights("xs_momentum", bars, {**params, "skip": 0}).iloc[-1]["A"] == 1.0
    assert portfolio_weights("xs_momentum", bars, {**params, "skip": 1}).iloc[-1]["B"] == 1.0


def test_ties_go_to_the_symbol_listed_first() -> None:
    bars = _geometric({"A": 0.01, "B": 0.01, "C": 0.01})
    w = portfolio_weights("xs_momentum", bars, {"lookback": 2, "skip": 0, "k": 1, "rebalance": 1})
    assert w.iloc[-1].to_dict() == {"A": 1.0, "B": 0.0, "C": 0.0}


def test_mean_reversion_buys_the_losers() -> None:
    bars = _geometric({"A": 0.01, "B": 0.03, "C": -0.01, "D": 0.02})
    p = {"lookback": 2, "k": 1, "rebalance": "daily"}
    assert portfolio_weights("xs_mean_reversion", bars, p).iloc[-1]["C"] == 1.0
    w = portfolio_weights("xs_mean_reversion", bars, {**p, "long_short": True}).iloc[-1]
    assert w.to_dict() == {"A": 0.0, "B": -0.5, "C": 0.5, "D": 0.0}


def test_momentum_on_real_data_holds_the_top_k_on_each_rebalance_date(
    universe: dict[str, pd.DataFrame],
) -> None:
    p = {"lookback": 60, "skip": 5, "k": 2, "rebalance": "monthly"}
    w = portfolio_weights("xs_momentum", universe, p)
    close = pd.DataFrame({s: b["close"] for s, b in universe.items()})
    score = close.shift(5) / close.shift(60) - 1.0
    dates = w.index[rebalance_mask(w.index, "monthly")]
    checked = 0
    for d in dates:
        row = score.loc[d].dropna()
        if len(row) < 2:
            continue
        top = set(row.sort_values(ascending=False, kind="stable").index[:2])
        assert set(w.columns[w.loc[d] > 0]) == top
        np.testing.assert_allclose(w.loc[d, list(top)], 0.5)
        checked += 1
    assert checked > 20


def test_long_short_momentum_is_dollar_neutral(universe: dict[str, pd.DataFrame]) -> None:
    w = portfolio_weights(
        "xs_momentum", universe, {"lookback": 40, "skip": 0, "k": 2, "long_short": True}
    )
    live = w.abs().sum(axis=1) > 0
    np.testing.assert_allclose(w[live].sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(w[live].abs().sum(axis=1), 1.0)
    assert ((w[live] > 0).sum(axis=1) == 2).all() and ((w[live] < 0).sum(axis=1) == 2).all()


def test_signal_times_equal_weight_matches_the_single_asset_targets(
    universe: dict[str, pd.DataFrame],
) -> None:
    params = {"fast": 10, "slow": 40, "allow_short": True, "allocator": "equal"}
    w = portfolio_weights("signal_sma_crossover", universe, params)
    signal = get_strategy("sma_crossover")
    sides = pd.DataFrame(
        {s: signal.positions(b, fast=10, slow=40, allow_short=True) for s, b in universe.items()}
    )
    sides = np.sign(sides.sort_index().ffill().fillna(0.0))
    held = (sides != 0).sum(axis=1).replace(0, 1)
    expected = sides.div(held, axis=0)
    pd.testing.assert_frame_equal(w, expected, check_names=False, check_freq=False)
    assert (w < 0).any().any() and (w > 0).any().any()


def test_signal_times_risk_parity_sizes_by_risk(universe: dict[str, pd.DataFrame]) -> None:
    recent = {s: b.loc["2012-06-01":] for s, b in universe.items()}
    params = {"lookback": 40, "allocator": "risk_parity", "risk_window": 40}
    w = portfolio_weights("signal_momentum", recent, params)
    eq = portfolio_weights("signal_momentum", recent, {**params, "allocator": "equal"})
    pd.testing.assert_frame_equal(np.sign(w), np.sign(eq).where(w.abs().sum(axis=1) > 0, 0.0))
    multi = (w > 0).sum(axis=1) >= 2
    assert multi.any() and not np.allclose(w[multi], eq[multi])


def test_fewer_than_two_symbols_is_refused() -> None:
    one = {"A": make_bars(30, 1)}
    for name in ("xs_momentum", "xs_mean_reversion", "signal_sma_crossover", "risk_parity"):
        with pytest.raises(ValueError, match=rf"{name} is cross-sectional.*at least 2.*\['A'\]"):
            portfolio_weights(name, one)


def test_bad_parameters_are_named() -> None:
    bars = {"A": make_bars(30, 1), "B": make_bars(30, 2)}
    cases = {
        "'lookbak'": {"lookbak": 5},
        "'skip'.*< 'lookback'": {"lookback": 5, "skip": 5},
        "'fraction'": {"fraction": 0.0},
        "'k'": {"k": -1},
        "unknown allocator 'hrp'": {"allocator": "hrp"},
        "'rebalance'": {"rebalance": "yearly"},
        "'risk_window'": {"risk_window": 1},
        "'long_short'": {"long_short": "yes"},
    }
    for message, params in cases.items():
        with pytest.raises(ValueError, match=message):
            portfolio_weights("xs_momentum", bars, params)
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['window'\]"):
        portfolio_weights("signal_sma_crossover", bars, {"window": 3})


def test_nan_prices_are_refused_with_the_symbol_and_date() -> None:
    bars = {"A": make_bars(30, 1), "B": make_bars(30, 2)}
    bars["B"].iloc[12, bars["B"].columns.get_loc("close")] = np.inf
    with pytest.raises(ValueError, match=r"xs_momentum: close of 'B'.*inf.*2020-01-13"):
        portfolio_weights("xs_momentum", bars)
