"""The cost models: flat costs unchanged, volume-share costs causal and shared by every engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import (
    Book,
    Costs,
    FlatCosts,
    VolumeShareCosts,
    get_strategy,
    run_backtest,
    sweep,
)
from quant_pipelines.backtest._assemble import METRIC_KEYS
from quant_pipelines.backtest._sweep_kernel import N_METRICS, sweep_block_costs
from quant_pipelines.backtest.fills import fill_order
from quant_pipelines_tests._bars import bars_from_prices, make_bars, perturb_after
from quant_pipelines_tests.backtest_tests._portfolio_reference import RefCosts, reference_portfolio

_HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_costs_is_the_flat_model_and_validates() -> None:
    assert Costs is FlatCosts
    assert Costs(0.001, 2.0) == FlatCosts(commission=0.001, slippage_bps=2.0)
    with pytest.raises(ValueError, match="commission"):
        VolumeShareCosts(commission=1.5)
    with pytest.raises(ValueError, match="max_participation"):
        VolumeShareCosts(max_participation=0.0)
    with pytest.raises(ValueError, match="impact"):
        VolumeShareCosts(impact=-1.0)
    with pytest.raises(ValueError, match="window"):
        VolumeShareCosts(window=1)


def test_terms_are_trailing_statistics_known_at_the_close() -> None:
    volume = np.array([100.0, 200.0, 300.0, 0.0, 600.0])
    closes = np.array([100.0, 110.0, 99.0, 99.0, 120.0])
    terms = VolumeShareCosts(impact=0.5, max_participation=0.1, window=3).terms(volume, closes)
    adv = np.array([100.0, 150.0, 200.0, 500.0 / 3, 300.0])
    r = np.diff(np.log(closes))
    sigma = np.array(
        [0.0, 0.0, np.std(r[:2], ddof=1), np.std(r[:3], ddof=1), np.std(r[1:4], ddof=1)]
    )
    np.testing.assert_allclose(terms.cap, 0.1 * adv, rtol=1e-15)
    np.testing.assert_allclose(terms.impact, 0.5 * sigma / np.sqrt(adv), rtol=1e-12)
    flat = FlatCosts().terms(None, closes)
    assert (flat.impact == 0).all() and np.isinf(flat.cap).all()


@pytest.mark.parametrize("t", [5, 30, 58])
def test_terms_do_not_look_ahead(t: int) -> None:
    bars = make_bars(60, 4)
    other = perturb_after(bars, t, 9)
    other["volume"] = other["volume"].where(other.index <= bars.index[t], 7.0)
    model = VolumeShareCosts(window=10)
    a = model.terms(bars["volume"].to_numpy(), bars["close"].to_numpy())
    b = model.terms(other["volume"].to_numpy(), other["close"].to_numpy())
    np.testing.assert_array_equal(a.impact[: t + 1], b.impact[: t + 1])
    np.testing.assert_array_equal(a.cap[: t + 1], b.cap[: t + 1])
    assert not np.array_equal(a.cap, b.cap)


def test_fill_order_caps_moves_the_price_and_waits_without_volume() -> None:
    # Buy 10 units wanted (1000 at 100); the cap lets 4 through at 100 * (1 + 0.001 + 0.01 * 2).
    u, c, p, fee, traded, partial = fill_order(0.0, 1000.0, 1.0, 100.0, 1000.0, 0.01, 1.0, 1.0,
                                               0.01, 4.0)  # fmt: skip
    assert (u, traded, partial) == (4.0, True, True)
    assert p == pytest.approx(100.0 * (1.0 + 0.01 * 2.0))
    assert fee == pytest.approx(0.01 * 4.0 * p)
    assert c == pytest.approx(1000.0 - 4.0 * p - fee)
    # Selling with a huge impact: the price never goes below 0.
    u, c, p, _, _, partial = fill_order(9.0, 0.0, 0.0, 100.0, 900.0, 0.0, 1.0, 1.0, 1.0, math.inf)
    assert (u, p, c, partial) == (0.0, 0.0, 0.0, False)
    # No volume (cap 0): nothing trades, the order stays.
    out = fill_order(0.0, 1000.0, 1.0, 100.0, 1000.0, 0.0, 1.0, 1.0, 0.0, 0.0)
    assert out == (0.0, 1000.0, 100.0, 0.0, False, True)
    # Flat costs: no impact, no cap.
    out = fill_order(0.0, 1000.0, 1.0, 100.0, 1000.0, 0.0, 1.0, 1.0, 0.0, math.inf)
    assert out[0] == 10.0 and not out[5]


def test_an_order_beyond_the_cap_fills_over_the_next_opens() -> None:
    bars = bars_from_prices([100.0] * 6, [100.0] * 6)
    bars["volume"] = 100.0
    costs = VolumeShareCosts(commission=0.0, slippage_bps=0.0, impact=0.0, max_participation=0.25)
    res = run_backtest(bars, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], costs=costs, initial_equity=7_000.0)
    # 70 units wanted, 25 per bar: 25, 50, 70 at bars 1, 2, 3; then the target is reached.
    np.testing.assert_allclose(res.units.to_numpy(), [0, 25, 50, 70, 70, 70])
    replaced = run_backtest(bars, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], costs=costs, initial_equity=7e3)
    np.testing.assert_allclose(replaced.units.to_numpy(), [0, 25, 0, 0, 0, 0])


def test_volume_share_costs_without_impact_or_binding_cap_equal_flat_costs() -> None:
    bars = make_bars(200, 8)
    bars["volume"] = 1e12
    t = np.sign(np.sin(np.arange(200) / 7.0))
    flat = run_backtest(bars, t, costs=FlatCosts(0.001, 3.0))
    vs = run_backtest(bars, t, costs=VolumeShareCosts(0.001, 3.0, impact=0.0))
    assert vs.equity.tolist() == flat.equity.tolist()
    costly = run_backtest(bars, t, costs=VolumeShareCosts(0.001, 3.0, impact=50.0))
    assert costly.metrics["total_costs"] > flat.metrics["total_costs"]


def test_volume_share_costs_need_a_clean_volume_column() -> None:
    bars = make_bars(30, 1)
    with pytest.raises(ValueError, match="'volume' column"):
        run_backtest(bars.drop(columns="volume"), np.ones(30), costs=VolumeShareCosts())
    bars.loc[bars.index[7], "volume"] = np.nan
    with pytest.raises(ValueError, match=str(bars.index[7].date())):
        run_backtest(bars, np.ones(30), costs=VolumeShareCosts())
    with pytest.raises(TypeError, match="FlatCosts or VolumeShareCosts"):
        run_backtest(bars, np.ones(30), costs={"commission": 0.0})  # type: ignore[arg-type]


def _vs(draw: st.DrawFn) -> VolumeShareCosts:
    return VolumeShareCosts(
        commission=draw(st.sampled_from([0.0, 0.002])),
        slippage_bps=draw(st.sampled_from([0.0, 5.0])),
        impact=draw(st.sampled_from([0.0, 0.142, 2.0])),
        max_participation=draw(st.sampled_from([0.01, 0.2, 1.0])),
        window=draw(st.sampled_from([2, 20])),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(1, 80))
    seed = draw(st.integers(0, 10_000))
    bars = make_bars(n, seed, vol=draw(st.sampled_from([0.0, 0.02, 0.3])), gap_vol=0.01)
    bars["volume"] = np.random.default_rng(seed).uniform(0.0, 3_000.0, n)
    levels = st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0])
    targets = np.array(draw(st.lists(levels, min_size=n, max_size=n)))
    return bars, targets, _vs(draw), draw(st.sampled_from([1.0, 2.0]))


@_HYP
@given(cases())
def test_run_backtest_with_volume_share_costs_matches_the_reference_book(case: tuple) -> None:
    bars, targets, costs, leverage = case
    res = run_backtest(bars, targets, costs=costs, max_leverage=leverage)
    ref = RefCosts(costs.commission, costs.slippage_bps, costs.impact, costs.max_participation,
                   costs.window)  # fmt: skip
    sessions = {"X": {ts: (r.open, r.close, r.volume) for ts, r in bars.iterrows()}}
    want = reference_portfolio(
        sessions,
        {"X": np.clip(targets, -leverage, leverage).tolist()},
        list(bars.index),
        costs={"X": ref},
        initial_equity=100_000.0,
        max_gross_leverage=leverage,
        allow_short=True,
        rule="on_change",
    )
    np.testing.assert_allclose(res.equity.to_numpy(), want, rtol=1e-9, atol=1e-4)


@_HYP
@given(cases())
def test_a_book_stepped_with_the_terms_equals_run_backtest(case: tuple) -> None:
    """What the simulator does with volume-share costs, bit for bit."""
    bars, targets, costs, leverage = case
    res = run_backtest(bars, targets, costs=costs, max_leverage=leverage)
    terms = costs.terms(bars["volume"].to_numpy(), bars["close"].to_numpy())
    book = Book(costs=costs, max_leverage=leverage)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    curve = [book.step(0.0, o[0], c[0])]
    for k in range(1, len(bars)):
        step = book.step(
            targets[k - 1], o[k], c[k], impact=terms.impact[k - 1], cap=terms.cap[k - 1]
        )
        curve.append(step)
    assert curve == res.equity.tolist()


@_HYP
@given(cases(), st.integers(0, 20), st.sampled_from([1, 10**9]))
def test_sweep_kernel_equals_run_backtest_with_volume_share_costs(
    case: tuple, start: int, min_vector: int
) -> None:
    bars, targets, costs, leverage = case
    rows = np.vstack([targets, np.roll(targets, 3), -targets, np.zeros_like(targets)] * 5)
    history = np.zeros((len(rows), start))
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    terms = costs.terms(bars["volume"].to_numpy(), c)
    out = np.full((len(rows), N_METRICS), np.nan)
    bad = sweep_block_costs(o, c, np.ascontiguousarray(np.hstack([history, rows])), start,
                            leverage, costs.commission, costs.slippage, terms.impact, terms.cap,
                            100_000.0, 252.0, out, min_vector)  # fmt: skip
    assert bad == -1
    for i, row in enumerate(rows):
        want = run_backtest(bars, row, costs=costs, max_leverage=leverage).metrics
        for j, key in enumerate(METRIC_KEYS):
            assert out[i, j] == pytest.approx(want[key], rel=1e-9, abs=1e-9), (i, key)


def test_sweep_with_volume_share_costs_equals_run_backtest_on_the_window() -> None:
    bars = make_bars(300, 5, vol=0.03)
    bars["volume"] = np.random.default_rng(5).uniform(50.0, 500.0, 300)
    costs = VolumeShareCosts(impact=0.5, max_participation=0.1, window=10)
    strat = get_strategy("sma_crossover")
    sets = strat.search_space().sample(20, seed=1)
    table = sweep(bars, strat, sets, costs=costs, eval_range=(40, 300))
    partial = 0
    for i, p in enumerate(sets):
        pos = strat.positions(bars, **p).iloc[40:]
        res = run_backtest(bars.iloc[40:], pos, costs=costs)
        for key in METRIC_KEYS:
            assert table[key].iloc[i] == pytest.approx(res.metrics[key], rel=1e-9, abs=1e-9)
        partial += int((res.units.diff().fillna(0) != 0).sum() > res.metrics["n_trades"])
    assert partial > 0  # the cap bound: orders filled over several opens
