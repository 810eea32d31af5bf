"""No look-ahead: changing bars after t changes no portfolio weight at or before t."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest.portfolio._xs_panel import build_panel
from quant_pipelines.backtest.portfolio.strategies import (
    get_portfolio_strategy,
    list_portfolio_strategies,
    portfolio_weights,
)
from quant_pipelines_tests.backtest_tests.test_allocators import (
    _lookahead_universe,
    _perturbed,
)
from quant_pipelines_tests.backtest_tests.test_lookahead import SHORT_PARAMS

RISK = {"risk_window": 5}
PARAMS: dict[str, dict[str, Any]] = {
    "xs_momentum": {"lookback": 6, "skip": 2, "k": 1, "rebalance": 3, **RISK},
    "xs_mean_reversion": {"lookback": 3, "fraction": 0.5, "rebalance": "weekly", **RISK},
    "equal_weight": {"rebalance": 4},
    "inverse_vol": {"rebalance": 4, **RISK},
    "risk_parity": {"rebalance": 4, **RISK},
    "min_variance": {"rebalance": 4, **RISK},
    **{f"signal_{s}": {**p, "rebalance": 4, **RISK} for s, p in SHORT_PARAMS.items()},
}
CLOSED_FORM = sorted(n for n in PARAMS if n not in ("risk_parity", "min_variance"))


def _check(name: str, params: dict[str, Any], n: int, seed: int, cut: float) -> None:
    bars = _lookahead_universe(n, seed)
    index = build_panel(bars).index
    t = index[int(cut * (len(index) - 1))]
    before = portfolio_weights(name, bars, params)
    after = portfolio_weights(name, _perturbed(bars, t, seed), params)
    assert np.isfinite(before.to_numpy()).all()
    pd.testing.assert_frame_equal(
        before.loc[:t], after.loc[:t], check_exact=False, rtol=0, atol=1e-12
    )


def test_every_portfolio_strategy_is_covered() -> None:
    assert set(PARAMS) == set(list_portfolio_strategies())


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(CLOSED_FORM),
    allocator=st.sampled_from(["equal", "inverse_vol"]),
    flag=st.booleans(),
    n=st.integers(2, 50),
    seed=st.integers(0, 10_000),
    cut=st.floats(0.0, 1.0),
)
def test_closed_form_strategies_do_not_look_ahead(
    name: str, allocator: str, flag: bool, n: int, seed: int, cut: float
) -> None:
    params = dict(PARAMS[name])
    defaults = get_portfolio_strategy(name).default_params()
    if "allocator" in defaults:
        params["allocator"] = allocator
    for switch in ("long_short", "allow_short"):
        if switch in defaults:
            params[switch] = flag
    _check(name, params, n, seed, cut)


RISK_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "risk_parity": ("risk_parity", {}),
    "min_variance": ("min_variance", {}),
    "xs_momentum-erc": ("xs_momentum", {"allocator": "risk_parity", "long_short": True}),
    "xs_mean_reversion-minvar": ("xs_mean_reversion", {"allocator": "min_variance"}),
    "signal-erc": ("signal_sma_crossover", {"allocator": "risk_parity", "allow_short": True}),
}


@pytest.mark.parametrize("case", sorted(RISK_CASES))
@settings(max_examples=3, deadline=None)
@given(n=st.integers(8, 28), seed=st.integers(0, 10_000), cut=st.floats(0.0, 1.0))
def test_risk_based_strategies_do_not_look_ahead(case: str, n: int, seed: int, cut: float) -> None:
    name, extra = RISK_CASES[case]
    _check(name, {**PARAMS[name], **extra}, n, seed, cut)
