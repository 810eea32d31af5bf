"""Regime labels: vocabulary, causality, degenerate input and accuracy on synthetic data."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.signals import LABELS, regime_scores, regimes
from quant_pipelines_tests._bars import make_bars, perturb_after


def test_vocabulary_and_shape() -> None:
    bars = make_bars(400, 3)
    lab = regimes(bars)
    assert list(lab.columns) == ["trend", "volatility", "label"]
    assert lab.index.equals(bars.index)
    assert set(lab["trend"]) <= {"up", "down", "range"}
    assert set(lab["volatility"]) <= {"calm", "turbulent"}
    assert set(lab["label"]) <= set(LABELS)
    assert (lab["label"] == lab["trend"] + "_" + lab["volatility"]).all()
    p = regime_scores(bars)
    assert ((p[["p_up", "p_down", "p_range"]].sum(axis=1) - 1).abs() < 1e-9).all()


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 120), seed=st.integers(0, 10_000), cut=st.floats(0.0, 1.0))
def test_regimes_are_causal(n: int, seed: int, cut: float) -> None:
    bars = make_bars(n, seed)
    t = int(cut * (n - 1))
    a = regimes(bars, baseline_window=30)
    b = regimes(perturb_after(bars, t, seed), baseline_window=30)
    pd.testing.assert_frame_equal(a.iloc[: t + 1], b.iloc[: t + 1])


def test_degenerate_input() -> None:
    assert regimes(make_bars(5).iloc[:0]).empty
    flat = make_bars(50, 1)
    flat[["open", "high", "low", "close"]] = 10.0
    lab = regimes(flat)
    assert (lab["volatility"] == "calm").all()
    with pytest.raises(ValueError, match="close"):
        regimes(flat.assign(close=-1.0))
    with pytest.raises(ValueError, match="dof"):
        regimes(flat, dof=2.0)


def test_accuracy_on_synthetic_source() -> None:
    """Scored against the true regimes that SyntheticSource generated (see docs/signals.md)."""
    src = pytest.importorskip("quant_pipelines.marketdata").SyntheticSource(seed=3)
    bars = src.bars("SPY", "2005-01-01", "2014-12-31")
    truth = src.regimes("SPY", "2005-01-01", "2014-12-31")
    lab = regimes(bars)
    assert (lab["trend"] == truth["trend"]).mean() > 0.5  # three classes: chance ~ 0.35
    assert (lab["volatility"] == truth["volatility"]).mean() > 0.75
