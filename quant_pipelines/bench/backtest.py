"""Backtest benchmarks: single evaluations, a 1,000-set sweep and scaling with the bar count.

Every figure is measured in the same run as its reference:

* single SMA-crossover evaluations per second (strategy positions + ``run_backtest`` + metrics)
  on ~5,000 daily bars of one seeded synthetic symbol, against a plain Python bar-by-bar loop
  doing the same work (a private copy of the tests' reference, not an import of the tests);
* a 1,000-parameter-set ``sweep`` in combinations per second, against single evaluations
  (goal: 10x per combination);
* the time of one evaluation on 10k, 100k and 1M bars, against 10x the time at the previous
  size (a ratio near 1 means linear growth).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from quant_pipelines.backtest import Costs, get_strategy, run_backtest, sweep
from quant_pipelines.bench import Figure, timed

AREA = "backtest"
_COSTS = Costs(commission=0.001, slippage_bps=2.0)
_PARAMS = {"fast": 10, "slow": 50}


def _synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    """Seeded geometric random walk with overnight gaps, in the bar schema."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0002, 0.012, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    opens = prev * np.exp(rng.normal(0.0, 0.003, n))
    index = pd.date_range("1990-01-01", periods=n, freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.002,
            "low": np.minimum(opens, close) * 0.998,
            "close": close,
            "volume": np.full(n, 1e6),
        },
        index=index,
    )


def _daily_bars(n: int) -> pd.DataFrame:
    """About ``n`` daily bars of SPY from SyntheticSource (seed 0), else the random walk."""
    try:
        from quant_pipelines.marketdata import SyntheticSource

        bars = SyntheticSource(seed=0).bars("SPY", "2000-01-01", "2030-12-31").iloc[:n]
        if len(bars) == n:
            return bars
    except (ImportError, KeyError, ValueError):  # pragma: no cover - marketdata not available
        pass
    return _synthetic_bars(n)


def _reference_evaluation(
    opens: list[float], closes: list[float], fast: int, slow: int, commission: float, slip: float
) -> tuple[float, float, float]:
    """Plain bar-by-bar loop: SMA crossover targets, fills, equity and three metrics."""
    units, cash, in_force, target = 0.0, 100_000.0, 0.0, 0.0
    sum_f = sum_s = 0.0
    peak, mdd, prev_eq = cash, 0.0, cash
    s1 = s2 = 0.0
    for k in range(len(opens)):
        if k > 0 and target != in_force:
            eq_open = cash + units * opens[k]
            buy = opens[k] * (1.0 + slip)
            sell = opens[k] * (1.0 - slip)
            price = buy if target * eq_open / buy > units else sell
            new = target * eq_open / price
            cash -= (new - units) * price + commission * abs(new - units) * price
            units, in_force = new, target
        eq = cash + units * closes[k]
        if k > 0:
            r = eq / prev_eq - 1.0
            s1 += r
            s2 += r * r
        prev_eq = eq
        peak = max(peak, eq)
        mdd = min(mdd, eq / peak - 1.0)
        sum_f += closes[k] - (closes[k - fast] if k >= fast else 0.0)
        sum_s += closes[k] - (closes[k - slow] if k >= slow else 0.0)
        target = 1.0 if k >= slow - 1 and sum_f / fast > sum_s / slow else 0.0
    m = len(opens) - 1
    mean = s1 / m
    std = math.sqrt(max((s2 - s1 * mean) / (m - 1), 0.0))
    return eq / 100_000.0 - 1.0, mean / std * math.sqrt(252) if std else 0.0, mdd


def _single(bars: pd.DataFrame) -> dict[str, float]:
    strat = get_strategy("sma_crossover")
    return run_backtest(bars, strat.positions(bars, **_PARAMS), costs=_COSTS).metrics


def run(*, quick: bool = False) -> list[Figure]:
    """Run the backtest benchmarks.

    Args:
        quick: Small sizes (a few seconds), for a smoke test.

    Returns:
        The figures, area "backtest".
    """
    n = 1_000 if quick else 5_000
    bars = _daily_bars(n)
    opens, closes = bars["open"].tolist(), bars["close"].tolist()
    reps = 20 if quick else 300
    single_s = timed(lambda: [_single(bars) for _ in range(reps)], repeat=3) / reps
    ref_reps = 2 if quick else 5
    ref_s = (
        timed(
            lambda: [
                _reference_evaluation(opens, closes, 10, 50, _COSTS.commission, _COSTS.slippage)
                for _ in range(ref_reps)
            ],
            repeat=3,
        )
        / ref_reps
    )
    single_rate = 1.0 / single_s
    figures = [
        Figure(AREA, f"single SMA-crossover evaluations ({n:,} bars)", single_rate, "evals/s",
               "plain Python bar-by-bar loop", 1.0 / ref_s),
        Figure(AREA, f"single SMA-crossover evaluations ({n:,} bars), goal", single_rate,
               "evals/s", "3,000 evals/s goal", 3_000.0, goal=1.0),
    ]  # fmt: skip

    n_sets = 100 if quick else 1_000
    sets = get_strategy("sma_crossover").search_space().sample(n_sets, seed=0)
    sweep_s = timed(lambda: sweep(bars, "sma_crossover", sets, costs=_COSTS), repeat=3)
    figures.append(
        Figure(AREA, f"sweep of {n_sets:,} SMA-crossover sets ({n:,} bars)", n_sets / sweep_s,
               "combinations/s", "single evaluations (same bars)", single_rate, goal=10.0)
    )  # fmt: skip

    sizes = [1_000, 10_000, 100_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    times = {}
    for size in sizes:
        big = _synthetic_bars(size, seed=1)
        times[size] = timed(lambda big=big: _single(big), repeat=2 if size >= 1_000_000 else 3)
    for prev, size in itertools.pairwise(sizes):
        figures.append(
            Figure(AREA, f"one evaluation on {size:,} bars", times[size], "s",
                   f"10 x the time on {prev:,} bars", 10.0 * times[prev], higher_is_better=False)
        )  # fmt: skip
    return figures
