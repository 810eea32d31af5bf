"""Regime labels: vocabulary, causality, the trend rule by hand, degenerate input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.signals import LABELS, regime_scores, regimes
from quant_pipelines_tests._bars import make_bars, make_trend_bars, perturb_after


@pytest.mark.parametrize("method", ["drawdown", "hmm"])
def test_vocabulary_and_shape(method: str) -> None:
    bars = make_trend_bars(600, 3, mean_duration=150)
    lab = regimes(bars, trend_method=method)
    assert list(lab.columns) == ["trend", "volatility", "label"]
    assert lab.index.equals(bars.index)
    assert set(lab["trend"]) <= {"up", "down", "range"}
    assert {"up", "down"} <= set(lab["trend"])  # both directions occur on trending bars
    assert set(lab["volatility"]) <= {"calm", "turbulent"}
    assert set(lab["label"]) <= set(LABELS)
    assert (lab["label"] == lab["trend"] + "_" + lab["volatility"]).all()
    p = regime_scores(bars)
    assert ((p[["p_up", "p_down", "p_range"]].sum(axis=1) - 1).abs() < 1e-9).all()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 260),
    seed=st.integers(0, 10_000),
    cut=st.floats(0.0, 1.0),
    method=st.sampled_from(["drawdown", "hmm"]),
    small=st.booleans(),
)
def test_regimes_are_causal(n: int, seed: int, cut: float, method: str, small: bool) -> None:
    """Replacing every bar after t never changes a label at or before t."""
    bars = make_bars(n, seed, drift=0.004 if seed % 2 else -0.004)
    t = int(cut * (n - 1))
    kw = {"trend_filter": 5, "scale_window": 20, "baseline_window": 30} if small else {}
    a = regimes(bars, trend_method=method, **kw)
    b = regimes(perturb_after(bars, t, seed), trend_method=method, **kw)
    pd.testing.assert_frame_equal(a.iloc[: t + 1], b.iloc[: t + 1])
    pd.testing.assert_frame_equal(a, regimes(bars, trend_method=method, **kw))  # deterministic


def test_causality_check_has_teeth() -> None:
    """On these bars the perturbation does change later labels, so the property test can fail."""
    bars = make_bars(260, 1, drift=0.004)
    kw = {"trend_filter": 5, "scale_window": 20}
    a = regimes(bars, **kw)["trend"]
    b = regimes(perturb_after(bars, 100, 1), **kw)["trend"]
    assert (a.iloc[:101] == b.iloc[:101]).all()
    assert (a.iloc[101:] != b.iloc[101:]).any()


def test_drawdown_rule_by_hand() -> None:
    """Up 1% a bar for 60 bars, then down 1% a bar: the switches fall on hand-computed bars.

    Every |log return| is 0.01, so the robust sigma is s = 0.01 / 0.6745 = 0.014826 once 20
    returns exist (bar 20). Up: x >= trough + 4 s = 0.0593 above the first close, first true at
    bar 20. Down: x <= peak - 5 s = 0.60 - 0.0741, first true 8 bars after the peak at bar 60.
    """
    x = np.r_[np.arange(61) * 0.01, 0.60 - np.arange(1, 40) * 0.01]
    bars = make_bars(len(x)).assign(close=100 * np.exp(x))
    trend = regimes(bars, trend_filter=0)["trend"].to_numpy()
    expected = np.array(["range"] * 20 + ["up"] * 48 + ["down"] * 32, dtype=object)
    assert (trend == expected).all()
    # With the 50-bar filter the up-turn waits for the moving average (50 bars of history),
    # and the down-turn for the close to drop below it: later than without the filter.
    filtered = regimes(bars)["trend"].to_numpy()
    assert (filtered[:49] == "range").all() and filtered[49] == "up"
    assert np.flatnonzero(filtered == "down")[0] > 68


def test_hysteresis_holds_through_small_pullbacks() -> None:
    """A 2-sigma dip inside a rise does not flip the label; only a fall of 5 sigmas does.

    Sigma is 0.01 / 0.6745 = 0.0148: the final fall flips the label on its 8th bar
    (0.08 = 5.4 sigma), not on its 7th (0.07 = 4.7 sigma).
    """
    steps = np.r_[np.full(60, 0.01), np.full(3, -0.01), np.full(20, 0.01), np.full(8, -0.01)]
    x = np.r_[0.0, np.cumsum(steps)]
    bars = make_bars(len(x)).assign(close=100 * np.exp(x))
    trend = regimes(bars, trend_filter=0)["trend"].to_numpy()
    assert (trend[20:-1] == "up").all()
    assert trend[-1] == "down"


def test_degenerate_input() -> None:
    assert regimes(make_bars(5).iloc[:0]).empty
    flat = make_bars(80, 1)
    flat[["open", "high", "low", "close"]] = 10.0
    lab = regimes(flat)
    assert (lab["volatility"] == "calm").all()
    assert (lab["trend"] == "range").all()  # nothing to confirm
    with pytest.raises(ValueError, match="close"):
        regimes(flat.assign(close=-1.0))
    with pytest.raises(ValueError, match="dof"):
        regimes(flat, dof=2.0)
    with pytest.raises(ValueError, match="trend_method"):
        regimes(flat, trend_method="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="thresholds"):
        regimes(flat, down_sigmas=0.0)
