"""The sweep's compiled kernel equals run_backtest: every strategy, random targets, ruin, NaN."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import Costs, Strategy, get_strategy, run_backtest, sweep
from quant_pipelines.backtest._assemble import METRIC_KEYS
from quant_pipelines.backtest._sweep_kernel import LANES, N_METRICS, sweep_block
from quant_pipelines.backtest.space import SearchSpace
from quant_pipelines.backtest.strategies import IndicatorCache
from quant_pipelines_tests._bars import make_bars

STRATEGIES = [
    "sma_crossover",
    "ema_crossover",
    "rsi_mean_reversion",
    "bollinger_reversion",
    "donchian_breakout",
    "momentum",
]
SCALAR = 10**9  # min_vector that forces the scalar path
VECTOR = 1  # min_vector that forces the SIMD path
_HYP = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_close(got: np.ndarray, want: dict[str, float], where: object) -> None:
    for j, key in enumerate(METRIC_KEYS):
        assert got[j] == pytest.approx(want[key], rel=1e-9, abs=1e-12), (where, key)


def _kernel(bars, targets, *, costs=Costs(), max_leverage=1.0, start=0, min_vector=VECTOR):
    window = bars.iloc[start:]
    o = np.ascontiguousarray(window["open"].to_numpy())
    c = np.ascontiguousarray(window["close"].to_numpy())
    out = np.full((len(targets), N_METRICS), np.nan)
    bad = sweep_block(
        o,
        c,
        np.ascontiguousarray(targets),
        start,
        float(max_leverage),
        costs.commission,
        costs.slippage,
        100_000.0,
        252.0,
        out,
        min_vector,
    )
    return bad, out


def _random_targets(rng: np.random.Generator, rows: int, n: int, change: float) -> np.ndarray:
    """Piecewise-constant targets in [-3, 3] on a 0.5 grid, some nudged inside the slippage band."""
    levels = np.round(rng.uniform(-3.0, 3.0, (rows, n)) * 2.0) / 2.0
    nudge = rng.random((rows, n)) < 0.1
    levels[nudge] += 1e-7  # a target change too small to trade through the slippage band
    out = np.empty((rows, n))
    out[:, 0] = np.where(rng.random(rows) < change, levels[:, 0], 0.0)
    for k in range(1, n):
        moves = rng.random(rows) < change
        out[:, k] = np.where(moves, levels[:, k], out[:, k - 1])
    return out


def test_the_kernel_writes_one_column_per_metric_key() -> None:
    bars = make_bars(60, seed=3)
    want = run_backtest(bars, np.ones(len(bars)), costs=Costs()).metrics
    assert N_METRICS == len(METRIC_KEYS) == len(set(METRIC_KEYS))
    assert list(want) == list(METRIC_KEYS)
    bad, got = _kernel(bars, np.ones((1, len(bars))), min_vector=SCALAR)
    assert bad == -1
    _assert_close(got[0], want, "constant long")


@_HYP
@given(
    name=st.sampled_from(STRATEGIES),
    n=st.integers(2, 260),
    seed=st.integers(0, 10_000),
    shorts=st.booleans(),
    start=st.integers(0, 40),
    commission=st.sampled_from([0.0, 0.001, 0.01]),
    slippage_bps=st.sampled_from([0.0, 2.0, 25.0]),
)
def test_sweep_equals_run_backtest_for_every_strategy(
    name: str,
    n: int,
    seed: int,
    shorts: bool,
    start: int,
    commission: float,
    slippage_bps: float,
) -> None:
    bars = make_bars(n + start, seed, vol=0.03)
    strat = get_strategy(name)
    sets = [{**p, "allow_short": shorts} for p in strat.search_space().sample(20, seed=seed)]
    costs = Costs(commission=commission, slippage_bps=slippage_bps)
    table = sweep(bars, name, sets, costs=costs, eval_range=(start, n + start))
    for i, p in enumerate(sets):
        pos = strat.positions(bars, **p).iloc[start:]
        want = run_backtest(bars.iloc[start:], pos, costs=costs).metrics
        _assert_close(table[list(METRIC_KEYS)].iloc[i].to_numpy(), want, (name, p))


@_HYP
@given(
    n=st.integers(1, 200),
    rows=st.integers(1, 2 * LANES + 3),
    seed=st.integers(0, 10_000),
    vol=st.sampled_from([0.01, 0.05, 0.3]),
    max_leverage=st.sampled_from([0.5, 1.0, 3.0]),
    change=st.sampled_from([0.02, 0.3, 1.0]),
    slippage_bps=st.sampled_from([0.0, 5.0, 2_000.0]),
)
def test_kernel_equals_run_backtest_on_random_targets(
    n: int,
    rows: int,
    seed: int,
    vol: float,
    max_leverage: float,
    change: float,
    slippage_bps: float,
) -> None:
    """Shorts, leverage beyond the cap (clipped), changes inside the slippage band (no trade; a
    20% band makes them common) and, with violent bars, ruin."""
    rng = np.random.default_rng(seed)
    bars = make_bars(n, seed, vol=vol, gap_vol=vol / 2)
    targets = _random_targets(rng, rows, n, change)
    costs = Costs(commission=0.002, slippage_bps=slippage_bps)
    bad_v, vec = _kernel(bars, targets, costs=costs, max_leverage=max_leverage)
    bad_s, sca = _kernel(bars, targets, costs=costs, max_leverage=max_leverage, min_vector=SCALAR)
    assert bad_v == bad_s == -1
    np.testing.assert_array_equal(vec, sca)  # the SIMD and scalar paths agree bit for bit
    for i in range(rows):
        res = run_backtest(bars, targets[i], costs=costs, max_leverage=max_leverage)
        _assert_close(vec[i], res.metrics, i)


def test_ruin_at_an_open_and_at_a_close_inside_a_simd_group() -> None:
    n = 120
    bars = make_bars(n, 3, vol=0.01)
    cols = ["open", "high", "low", "close"]
    bars.loc[bars.index[60:], cols] *= 2.5  # an overnight gap: shorts lose it all at bar 60's open
    bars.loc[bars.index[90], "close"] = bars["open"].iloc[90] * 1.8  # a close that ruins 2x shorts
    rng = np.random.default_rng(0)
    targets = _random_targets(rng, LANES, n, 0.05)
    targets[:8] = -1.0  # short from bar 1: ruined at bar 60's open
    targets[8:16, :70] = 0.0
    targets[8:16, 70:] = -2.0  # short 2x from bar 71: ruined at bar 90's close
    targets[16:24] = 1.0  # long through it all: never ruined
    _, vec = _kernel(bars, targets, max_leverage=2.0)
    _, sca = _kernel(bars, targets, max_leverage=2.0, min_vector=SCALAR)
    np.testing.assert_array_equal(vec, sca)
    for i in range(LANES):
        res = run_backtest(bars, targets[i], max_leverage=2.0)
        _assert_close(vec[i], res.metrics, i)
        if i < 16:
            assert res.ruined_at is not None
    final = METRIC_KEYS.index("final_equity")
    assert (vec[:16, final] == 0.0).all() and (vec[16:24, final] > 0.0).all()


@pytest.mark.parametrize("min_vector", [VECTOR, SCALAR])
def test_one_and_two_bars(min_vector: int) -> None:
    bars = make_bars(2, 1)
    targets = np.array([[1.0, 1.0], [0.0, -1.0], [-2.0, 0.0]])
    for n in (1, 2):
        _, out = _kernel(bars.iloc[:n], targets[:, :n], min_vector=min_vector)
        for i in range(len(targets)):
            _assert_close(out[i], run_backtest(bars.iloc[:n], targets[i, :n]).metrics, (n, i))


@pytest.mark.parametrize("min_vector", [VECTOR, SCALAR])
@pytest.mark.parametrize("at", [0, 17, 49])
def test_nan_target_is_reported(min_vector: int, at: int) -> None:
    bars = make_bars(50, 2)
    targets = np.zeros((20, 50))
    targets[:, 10:] = 1.0
    targets[13, at] = np.nan  # at 49: the last target, never filled, is still checked
    bad, _ = _kernel(bars, targets, min_vector=min_vector)
    assert bad == 13


class _NanStrategy(Strategy):
    name = "nan_for_tests"
    family = "test"

    def default_params(self) -> dict[str, object]:
        return {"bad": False}

    def search_space(self) -> SearchSpace:
        return SearchSpace(())

    def targets(self, cache: IndicatorCache, **p: object) -> np.ndarray:
        out = np.ones(cache.n)
        if p["bad"]:
            out[-1] = np.nan
        return out


def test_sweep_raises_on_nan_targets() -> None:
    bars = make_bars(40, 4)
    sets = [{"bad": False}] * 30 + [{"bad": True}]
    with pytest.raises(ValueError, match="NaN targets for \\{'bad': True\\}"):
        sweep(bars, _NanStrategy(), sets)
    assert len(sweep(bars, _NanStrategy(), sets[:-1])) == 30
