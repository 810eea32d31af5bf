"""Allocators: the sizing rules on a covariance, trailing causal allocation, bad input."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest.portfolio._xs_panel import build_panel, rebalance_mask
from quant_pipelines.backtest.portfolio.allocators import (
    ALLOCATORS,
    allocate,
    equal_weights,
    inverse_volatility_weights,
    min_variance_weights,
    risk_contributions,
    risk_parity_weights,
    shrunk_covariance,
)
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines_tests._bars import goog_bars, make_bars


def _returns(n_obs: int, n_assets: int, seed: int) -> np.ndarray:
    """Correlated returns with different volatilities (one common factor)."""
    rng = np.random.default_rng(seed)
    vols = rng.uniform(0.005, 0.04, n_assets)
    beta = rng.uniform(0.2, 1.5, n_assets)
    common = rng.normal(0.0, 0.01, (n_obs, 1))
    return common * beta + rng.normal(0.0, 1.0, (n_obs, n_assets)) * vols


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    """Real GOOG bars plus seeded synthetic equities, FX and crypto, stamped by date."""
    src = SyntheticSource(11)
    out = {"GOOG": goog_bars().loc["2011-01-01":]}
    for s in ("AAPL", "SPY", "EURUSD", "BTCUSD"):
        b = src.bars(s, "2011-06-01", "2013-03-01")
        b.index = b.index.normalize()
        out[s] = b
    return out


@pytest.mark.parametrize(("n_obs", "n_assets", "seed"), [(250, 6, 0), (40, 12, 1), (8, 20, 2)])
def test_risk_parity_equalises_risk_contributions(n_obs: int, n_assets: int, seed: int) -> None:
    cov = shrunk_covariance(_returns(n_obs, n_assets, seed))
    w = risk_parity_weights(cov)
    assert w.sum() == pytest.approx(1.0, abs=1e-12) and (w > 0).all()
    np.testing.assert_allclose(risk_contributions(w, cov), 1.0 / n_assets, rtol=1e-3)
    # Not equal weight in disguise: the assets' volatilities differ.
    assert np.ptp(w) > 0.1 / n_assets


@pytest.mark.parametrize(("n_obs", "n_assets", "seed"), [(250, 6, 3), (40, 12, 4), (8, 20, 5)])
def test_min_variance_beats_the_other_rules_in_sample(n_obs: int, n_assets: int, seed: int) -> None:
    cov = shrunk_covariance(_returns(n_obs, n_assets, seed))
    w = min_variance_weights(cov)
    assert w.sum() == pytest.approx(1.0, abs=1e-12) and (w >= 0).all()
    var = w @ cov @ w
    for other in (equal_weights, inverse_volatility_weights, risk_parity_weights):
        assert var < other(cov) @ cov @ other(cov)
    # No long-only perturbation lowers it (first-order optimality on the simplex).
    grad = cov @ w
    assert grad.min() >= grad[w > 1e-6].max() - 1e-4 * var  # solver tolerance


def test_inverse_volatility_is_proportional_to_one_over_sigma() -> None:
    cov = shrunk_covariance(_returns(100, 5, 6))
    w = inverse_volatility_weights(cov)
    sigma = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(w * sigma, (w * sigma)[0], rtol=1e-12)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(equal_weights(cov), 0.2)


def test_shrunk_covariance_is_invertible_with_fewer_observations_than_assets() -> None:
    x = _returns(5, 30, 7)
    assert np.linalg.matrix_rank(np.cov(x.T)) < 30
    assert np.linalg.eigvalsh(shrunk_covariance(x)).min() > 0


def test_rules_reject_a_bad_covariance() -> None:
    with pytest.raises(ValueError, match="square"):
        risk_parity_weights(np.ones((2, 3)))
    with pytest.raises(ValueError, match="positive diagonal"):
        min_variance_weights(np.diag([1.0, 0.0]))
    with pytest.raises(ValueError, match="2 observations"):
        shrunk_covariance(np.ones((1, 3)))
    assert risk_parity_weights(np.array([[0.04]])).tolist() == [1.0]


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_allocate_on_real_and_synthetic_bars(
    universe: dict[str, pd.DataFrame], allocator: str
) -> None:
    w = allocate(universe, allocator, window=40, rebalance="monthly")
    assert list(w.columns) == list(universe) and w.index.tz is not None
    assert np.isfinite(w.to_numpy()).all() and (w.to_numpy() >= 0).all()
    invested = w.sum(axis=1) > 0
    np.testing.assert_allclose(w.sum(axis=1)[invested], 1.0, atol=1e-9)
    # Nothing before a symbol trades (or, for risk rules, before a full window of returns).
    union = build_panel(universe).index
    for s, b in universe.items():
        start = union.get_loc(b.index[0])
        first = union[start] if allocator == "equal" else union[start + 40]
        assert (w.loc[w.index < first, s] == 0).all()
        if allocator != "min_variance":  # min variance may leave a volatile symbol out
            assert w.loc[w.index >= first, s].iloc[-1] > 0
    # Weights move on rebalance dates or when the held set changes, never in between.
    mask = rebalance_mask(w.index, "monthly")
    held = (w.to_numpy() != 0).astype(int)
    moved = np.flatnonzero(np.abs(np.diff(w.to_numpy(), axis=0)).sum(axis=1) > 0) + 1
    set_change = np.abs(np.diff(held, axis=0)).sum(axis=1) > 0
    assert all(mask[i] or set_change[i - 1] for i in moved)


def test_inverse_vol_weights_match_an_independent_computation(
    universe: dict[str, pd.DataFrame],
) -> None:
    w = allocate(universe, "inverse_vol", window=30, rebalance="weekly")
    close = pd.DataFrame({s: b["close"] for s, b in universe.items()}).sort_index().ffill()
    t = w.index[-1] - pd.Timedelta(days=40)
    at = w.index[w.index <= t][-1]
    last_rebalance = w.index[(w.index <= at) & rebalance_mask(w.index, "weekly")][-1]
    r = close.loc[:last_rebalance].pct_change(fill_method=None).iloc[-30:]
    inv = 1.0 / r.std(ddof=1)
    np.testing.assert_allclose(w.loc[at].to_numpy(), (inv / inv.sum()).to_numpy(), rtol=1e-7)


def test_risk_rules_with_fewer_returns_than_symbols() -> None:
    bars = {f"S{i}": make_bars(30, i, vol=0.01 * (1 + i % 3)) for i in range(8)}
    for allocator in ("risk_parity", "min_variance"):
        w = allocate(bars, allocator, window=5, rebalance=10)
        last = w.iloc[-1].to_numpy()
        assert last.sum() == pytest.approx(1.0) and (last >= 0).all()
        assert (w.iloc[:5].to_numpy() == 0).all()  # 5 returns need 6 closes


def test_signed_selection_sizes_the_signed_portfolio() -> None:
    bars = {f"S{i}": make_bars(80, 20 + i, vol=0.01 * (1 + i)) for i in range(4)}
    index = bars["S0"].index
    sel = pd.DataFrame({"S0": 1.0, "S1": -1.0, "S2": 0.0, "S3": 1.0}, index=index)
    for allocator in ALLOCATORS:
        w = allocate(bars, allocator, window=20, rebalance="weekly", selection=sel)
        last = w.iloc[-1]
        assert last["S0"] >= 0 and last["S1"] <= 0 and last["S2"] == 0 and last["S3"] >= 0
        if allocator != "min_variance":
            assert (last[["S0", "S3"]] > 0).all() and last["S1"] < 0
        assert last.abs().sum() == pytest.approx(1.0)
    w = allocate(bars, "risk_parity", window=20, rebalance="weekly", selection=sel)
    panel = build_panel(bars)
    t = len(index) - 1
    last_rb = np.flatnonzero(rebalance_mask(index, "weekly")[: t + 1])[-1]
    block = panel.returns[last_rb - 19 : last_rb + 1][:, [0, 1, 3]]
    cov = shrunk_covariance(block)
    signed = w.iloc[-1].to_numpy()[[0, 1, 3]]
    np.testing.assert_allclose(risk_contributions(signed, cov), 1.0 / 3, rtol=1e-3)


def test_mixed_calendars_align_on_the_union(universe: dict[str, pd.DataFrame]) -> None:
    w = allocate(universe, "equal", rebalance="daily")
    weekend = w.index.day_of_week >= 5
    union = functools.reduce(pd.Index.union, (b.index for b in universe.values()))
    assert weekend.any() and w.index.equals(union)
    # On a Saturday the equities (not trading) still hold their weight: all five are held.
    sat = w.index[weekend & (w.index > universe["BTCUSD"].index[0])][0]
    assert (w.loc[sat] > 0).sum() == 5


def test_rebalance_rules() -> None:
    idx = pd.DatetimeIndex(
        ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-05", "2024-02-06", "2024-03-04"],
        tz="UTC",
    )
    assert rebalance_mask(idx, "monthly").tolist() == [True, False, True, False, False, True]
    assert rebalance_mask(idx, "weekly").tolist() == [True, False, False, True, False, True]
    assert rebalance_mask(idx, 2).tolist() == [True, False, True, False, True, False]
    assert rebalance_mask(idx, [idx[3]]).tolist() == [False, False, False, True, False, False]
    assert rebalance_mask(idx, "daily").all()
    with pytest.raises(ValueError, match="quarterly"):
        rebalance_mask(idx, "quarterly")
    with pytest.raises(ValueError, match=">= 1"):
        rebalance_mask(idx, 0)


def test_bad_input_is_refused_clearly() -> None:
    bars = {"A": make_bars(30, 1), "B": make_bars(30, 2)}
    with pytest.raises(ValueError, match="unknown allocator 'hrp'"):
        allocate(bars, "hrp")
    broken = bars["B"].copy()
    broken.iloc[7, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(ValueError, match=r"close of 'B'.*nan.*2020-01-08"):
        allocate({"A": bars["A"], "B": broken}, "equal")
    with pytest.raises(ValueError, match="window"):
        allocate(bars, "inverse_vol", window=1)
    with pytest.raises(ValueError, match="min_periods"):
        allocate(bars, "inverse_vol", window=10, min_periods=11)
    with pytest.raises(ValueError, match="empty"):
        allocate({"A": bars["A"], "B": bars["B"].iloc[:0]}, "equal")
    naive = bars["B"].tz_localize(None)
    with pytest.raises(ValueError, match=r"tz-naive"):
        allocate({"A": bars["A"], "B": naive}, "equal")
    sel = pd.DataFrame({"A": 1.0}, index=bars["A"].index)
    with pytest.raises(ValueError, match=r"missing \['B'\]"):
        allocate(bars, "equal", selection=sel)
    sel = pd.DataFrame({"A": 1.0, "B": np.nan}, index=bars["A"].index)
    with pytest.raises(ValueError, match="NaN for 'B'"):
        allocate(bars, "equal", selection=sel)


def _perturbed(
    bars: dict[str, pd.DataFrame], cut: pd.Timestamp, seed: int
) -> dict[str, pd.DataFrame]:
    """The bars after ``cut`` replaced by another walk, and some of them dropped."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, (s, b) in enumerate(bars.items()):
        other = make_bars(len(b), seed + 100 + i, vol=0.06).to_numpy()
        new = b.copy()
        after = b.index > cut
        new.loc[after] = other[after]
        keep = ~after | (rng.random(len(b)) < 0.7)
        keep[0] = True  # a symbol keeps at least one bar
        out[s] = new.loc[keep]
    return out


def _lookahead_universe(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Three symbols: one full, one starting late, one with missing sessions."""
    rng = np.random.default_rng(seed)
    a = make_bars(n, seed, vol=0.02)
    b = make_bars(n, seed + 1, vol=0.03).iloc[n // 4 :]
    c = make_bars(n, seed + 2, vol=0.01)
    c = c.loc[rng.random(n) < 0.8]
    return {"A": a, "B": b, "C": c if len(c) else a.copy()}


def _check_no_lookahead(
    allocator: str, n: int, seed: int, cut: float, rebalance: str | int
) -> None:
    bars = _lookahead_universe(n, seed)
    index = build_panel(bars).index
    t = index[int(cut * (len(index) - 1))]
    kw = {"window": 6, "min_periods": 3, "rebalance": rebalance}
    before = allocate(bars, allocator, **kw)
    after = allocate(_perturbed(bars, t, seed), allocator, **kw)
    assert np.isfinite(before.to_numpy()).all()
    pd.testing.assert_frame_equal(
        before.loc[:t], after.loc[:t], check_exact=False, rtol=0, atol=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(
    allocator=st.sampled_from(["equal", "inverse_vol"]),
    n=st.integers(2, 60),
    seed=st.integers(0, 10_000),
    cut=st.floats(0.0, 1.0),
    rebalance=st.sampled_from(["daily", "weekly", "monthly", 5]),
)
def test_closed_form_allocations_do_not_look_ahead(
    allocator: str, n: int, seed: int, cut: float, rebalance: str | int
) -> None:
    _check_no_lookahead(allocator, n, seed, cut, rebalance)


@pytest.mark.parametrize("allocator", ["min_variance", "risk_parity"])
@settings(max_examples=4, deadline=None)
@given(
    n=st.integers(8, 30),
    seed=st.integers(0, 10_000),
    cut=st.floats(0.0, 1.0),
    rebalance=st.sampled_from(["weekly", 7]),
)
def test_risk_based_allocations_do_not_look_ahead(
    allocator: str, n: int, seed: int, cut: float, rebalance: str | int
) -> None:
    _check_no_lookahead(allocator, n, seed, cut, rebalance)
