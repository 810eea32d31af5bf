"""The portfolio engine against the independent plain-Python reference book, and run_backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import run_backtest
from quant_pipelines.backtest.costs import FlatCosts, VolumeShareCosts
from quant_pipelines.backtest.portfolio import DriftBand, run_portfolio_backtest
from quant_pipelines_tests._bars import make_bars
from quant_pipelines_tests.backtest_tests._portfolio_reference import RefCosts, reference_portfolio

LEVELS = st.sampled_from([-3.0, -1.5, -1.0, -0.5, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 2.0, 3.0])
RULES = st.sampled_from(["on_change", "daily", "weekly", "monthly", 0.05, 0.3])
_HYP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cost_models(draw: st.DrawFn) -> tuple[FlatCosts | VolumeShareCosts, RefCosts]:
    commission = draw(st.sampled_from([0.0, 0.001, 0.01]))
    slippage_bps = draw(st.sampled_from([0.0, 2.0, 25.0]))
    if draw(st.booleans()):
        return FlatCosts(commission, slippage_bps), RefCosts(commission, slippage_bps)
    impact = draw(st.sampled_from([0.0, 0.142, 1.0]))
    part = draw(st.sampled_from([0.05, 0.3, 1.0]))
    window = draw(st.sampled_from([2, 5, 20]))
    return (
        VolumeShareCosts(commission, slippage_bps, impact, part, window),
        RefCosts(commission, slippage_bps, impact, part, window),
    )


@st.composite
def books(draw: st.DrawFn) -> dict:
    """A small universe on partly shared calendars, weights, costs and rules."""
    n_days = draw(st.integers(2, 45))
    days = pd.date_range("2024-01-25", periods=n_days, freq="D", tz="UTC", name="ts")
    n_sym = draw(st.integers(1, 4))
    bars, models, refs = {}, {}, {}
    for j in range(n_sym):
        seed = draw(st.integers(0, 10_000))
        frame = make_bars(n_days, seed, vol=draw(st.sampled_from([0.0, 0.02, 0.3])),
                          gap_vol=draw(st.sampled_from([0.0, 0.01, 0.2])))  # fmt: skip
        frame.index = days
        frame["volume"] = np.random.default_rng(seed).uniform(0.0, 4_000.0, n_days)
        keep = np.random.default_rng(seed + 1).random(n_days) >= draw(st.sampled_from([0, 0.3]))
        keep[draw(st.integers(0, n_days - 1))] = True  # at least one session
        bars[f"S{j}"] = frame[keep]
        models[f"S{j}"], refs[f"S{j}"] = _cost_models(draw)
    index = bars["S0"].index
    for f in bars.values():
        index = index.union(f.index)
    changes = st.lists(LEVELS, min_size=len(index), max_size=len(index))
    raw = {s: draw(changes) for s in bars}
    sticky = draw(st.sampled_from([0.0, 0.7]))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    weights = pd.DataFrame(raw, index=index)
    weights = weights.mask(rng.random(weights.shape) < sticky).ffill().fillna(0.0)
    return {
        "bars": bars,
        "weights": weights,
        "models": models,
        "refs": refs,
        "equity": draw(st.sampled_from([1e3, 1e5, 1e7])),
        "leverage": draw(st.sampled_from([1.0, 2.0, 3.0])),
        "short": draw(st.booleans()),
        "rule": draw(RULES),
    }


def _engine(case: dict):
    rule = case["rule"]
    return run_portfolio_backtest(
        case["bars"],
        case["weights"],
        costs=case["models"],
        initial_equity=case["equity"],
        max_gross_leverage=case["leverage"],
        allow_short=case["short"],
        rebalance=DriftBand(rule) if isinstance(rule, float) else rule,
    )


@_HYP
@given(books())
def test_engine_matches_the_reference_book(case: dict) -> None:
    res = _engine(case)
    rule = case["rule"]
    sessions = {
        s: {ts: (r.open, r.close, r.volume) for ts, r in f.iterrows()}
        for s, f in case["bars"].items()
    }
    weights = {s: case["weights"][s].tolist() for s in case["weights"].columns}
    want = reference_portfolio(
        sessions,
        weights,
        list(case["weights"].index),
        costs=case["refs"],
        initial_equity=case["equity"],
        max_gross_leverage=case["leverage"],
        allow_short=case["short"],
        rule=("drift", rule) if isinstance(rule, float) else rule,
    )
    np.testing.assert_allclose(res.equity.to_numpy(), want, rtol=1e-9, atol=1e-9 * case["equity"])


@_HYP
@given(books())
def test_trades_and_contributions_add_up(case: dict) -> None:
    res = _engine(case)
    e0 = case["equity"]
    change = res.equity.iloc[-1] - e0
    tol = 1e-9 * e0 * (1 + len(res.fills))
    contrib = res.contributions
    if res.ruined_at is None:
        assert abs(res.trades["pnl"].sum() - change) <= tol
        assert abs(contrib["pnl"].sum() - change) <= tol
    else:  # ruin floors equity at 0: the trades lost the whole book, the overshoot included
        assert change == -e0
        assert res.trades["pnl"].sum() <= change + tol
    assert abs(contrib["return_contribution"].sum() - res.metrics["total_return"]) <= tol / e0
    risk = contrib["risk_contribution"].sum()
    assert risk == 0.0 or abs(risk - 1.0) < 1e-6
    assert res.metrics["n_trades"] == len(res.trades)
    assert (res.trades["bars_held"] >= 1).all()
    gross = res.targets.abs().sum(axis=1)
    assert (gross <= case["leverage"] * (1 + 1e-12)).all()
    if not case["short"]:
        assert (res.targets >= 0).all().all()
        assert (res.positions >= -1e-12).all().all() or res.ruined_at is not None


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 10_000),
    vol=st.sampled_from([0.0, 0.01, 0.05, 0.3]),
    targets=st.lists(LEVELS, min_size=60, max_size=60),
    leverage=st.sampled_from([1.0, 2.0, 3.0]),
    flat=st.booleans(),
    equity=st.sampled_from([1e5, 1e7]),
)
def test_one_symbol_portfolio_equals_run_backtest(
    n: int, seed: int, vol: float, targets: list[float], leverage: float, flat: bool, equity: float
) -> None:
    bars = make_bars(n, seed, vol=vol, gap_vol=vol / 2)
    costs = FlatCosts(0.002, 5.0) if flat else VolumeShareCosts(0.002, 5.0, 0.5, 0.05, 5)
    t = np.asarray(targets[:n])
    single = run_backtest(bars, t, costs=costs, max_leverage=leverage, initial_equity=equity)
    book = run_portfolio_backtest(
        {"X": bars},
        pd.DataFrame({"X": t}, index=bars.index),
        costs=costs,
        max_gross_leverage=leverage,
        initial_equity=equity,
    )
    np.testing.assert_allclose(
        book.equity.to_numpy(), single.equity.to_numpy(), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(book.positions["X"].to_numpy(), single.units.to_numpy(), rtol=1e-9)
    for key, value in single.metrics.items():
        assert book.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    cols = ["entry_ts", "exit_ts", "side", "bars_held", "is_open"]
    pd.testing.assert_frame_equal(book.trades[cols], single.trades[cols])
    np.testing.assert_allclose(book.trades["pnl"], single.trades["pnl"], rtol=1e-9, atol=1e-6)
    assert book.ruined_at == single.ruined_at
