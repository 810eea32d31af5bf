"""Indicator values, input handling and causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines import signals
from quant_pipelines_tests._bars import make_bars, perturb_after

INDICATORS = {
    "sma": lambda b: signals.sma(b, 5),
    "ema": lambda b: signals.ema(b["close"], 4),
    "rsi": lambda b: signals.rsi(b, 6),
    "bollinger": lambda b: signals.bollinger(b, 5, num_std=1.5),
    "donchian": lambda b: signals.donchian(b, 4),
    "atr": lambda b: signals.atr(b, 5),
    "realized_volatility": lambda b: signals.realized_volatility(b, 5, periods_per_year=252),
    "momentum": lambda b: signals.momentum(b, 3),
}


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(INDICATORS)),
    n=st.integers(1, 60),
    seed=st.integers(0, 10_000),
    cut=st.floats(0.0, 1.0),
)
def test_indicators_are_causal(name: str, n: int, seed: int, cut: float) -> None:
    bars = make_bars(n, seed)
    t = int(cut * (n - 1))
    fn = INDICATORS[name]
    before, after = fn(bars), fn(perturb_after(bars, t, seed))
    left, right = before.iloc[: t + 1], after.iloc[: t + 1]
    if isinstance(left, pd.DataFrame):
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    else:
        pd.testing.assert_series_equal(left, right, check_exact=True)


def test_every_indicator_is_covered() -> None:
    exported = {
        "sma",
        "ema",
        "rsi",
        "bollinger",
        "donchian",
        "atr",
        "realized_volatility",
        "momentum",
    }
    assert exported == set(INDICATORS)
    assert exported <= set(signals.__all__)


def test_values_against_pandas() -> None:
    bars = make_bars(300, 1)
    c = bars["close"]
    np.testing.assert_allclose(signals.sma(c, 20), c.rolling(20).mean(), rtol=1e-10)
    ema = c.ewm(span=10, adjust=False, min_periods=10).mean()
    np.testing.assert_allclose(signals.ema(c, 10), ema, rtol=1e-12)
    bb = signals.bollinger(c, 20, num_std=2.0)
    np.testing.assert_allclose(bb["upper"], c.rolling(20).mean() + 2 * c.rolling(20).std(ddof=0))
    dc = signals.donchian(bars, 10)
    np.testing.assert_array_equal(dc["upper"], bars["high"].rolling(10).max())
    rv = signals.realized_volatility(c, 20)
    np.testing.assert_allclose(rv, np.log(c).diff().rolling(20).std(), rtol=1e-10)
    np.testing.assert_allclose(signals.momentum(c, 5), c / c.shift(5) - 1, rtol=1e-12)


def test_known_values() -> None:
    s = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0])
    assert signals.sma(s, 3).tolist()[2:] == [2.0, 3.0, 4.0]
    assert np.isnan(signals.sma(s, 3).iloc[1])
    up = pd.Series(np.arange(1.0, 40.0))
    assert signals.rsi(up, 14).iloc[-1] == 100.0
    flat = pd.Series(np.full(30, 7.5))
    assert signals.rsi(flat, 5).iloc[-1] == 50.0
    assert (signals.sma(flat, 4).dropna() == 7.5).all()  # exact on constant prices
    assert (signals.realized_volatility(flat, 5).dropna() == 0.0).all()
    bb = signals.bollinger(flat, 5)
    assert (bb["upper"].dropna() == 7.5).all() and bb["percent_b"].isna().all()
    bars = pd.DataFrame({"high": [2.0, 3.0, 4.0], "low": [1.0, 1.0, 2.0], "close": [1.5, 2.5, 3.0]})
    assert signals.atr(bars, 1).tolist() == [1.0, 2.0, 2.0]


def test_bad_input() -> None:
    s = pd.Series([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="window"):
        signals.sma(s, 0)
    with pytest.raises(ValueError, match="window"):
        signals.realized_volatility(s, 1)
    with pytest.raises(TypeError):
        signals.sma([1.0, 2.0], 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="close"):
        signals.sma(pd.DataFrame({"x": [1.0]}), 1)
    assert signals.sma(s, 5).isna().all()  # shorter than the window: all warm-up
    gappy = pd.Series([1.0, np.nan, 3.0, 4.0, 5.0])
    assert signals.sma(gappy, 2).tolist()[3:] == [3.5, 4.5]
