"""The sweep's driver: target blocks from the strategy, fed to the compiled kernel.

The kernel module (and numba with it, ~0.2 s) is imported on the first sweep, not with
``quant_pipelines.backtest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quant_pipelines.backtest.costs import CostModel, CostTerms
from quant_pipelines.backtest.strategies import IndicatorCache, Strategy


def sweep_metrics(
    opens: np.ndarray,
    closes: np.ndarray,
    strat: Strategy,
    cache: IndicatorCache,
    sets: Sequence[dict[str, Any]],
    *,
    start: int,
    costs: CostModel,
    terms: CostTerms,
    initial_equity: float,
    periods_per_year: float,
    max_leverage: float,
    block_size: int,
) -> np.ndarray:
    """Metrics (columns of ``_keys.METRIC_KEYS``) of every parameter set, one row each.

    Targets come ``block_size`` sets at a time from ``strat.targets_block`` on the cache's full
    history (each indicator window computed once); the kernel evaluates them from column
    ``start`` on against ``opens``/``closes`` (the evaluated bars), with the cost ``terms`` of
    those bars (``costs.terms`` on them: zero impact and no cap for flat costs). Blocks of a
    multiple of ``_sweep_kernel.LANES`` (64) sets keep every SIMD lane busy.

    Raises:
        ValueError: If a set's targets hold a NaN, or a target block has the wrong shape.
    """
    from quant_pipelines.backtest._sweep_kernel import N_METRICS, sweep_block_costs

    o = np.ascontiguousarray(opens, dtype=np.float64)
    c = np.ascontiguousarray(closes, dtype=np.float64)
    out = np.empty((len(sets), N_METRICS))
    impact = np.ascontiguousarray(terms.impact, dtype=np.float64)
    cap = np.ascontiguousarray(terms.cap, dtype=np.float64)
    step = max(int(block_size), 1)
    for lo in range(0, len(sets), step):
        chunk = sets[lo : lo + step]
        targets = np.ascontiguousarray(strat.targets_block(cache, chunk), dtype=np.float64)
        if targets.shape != (len(chunk), start + len(o)):
            raise ValueError(
                f"{strat.name}.targets_block returned shape {targets.shape}, "
                f"expected {(len(chunk), start + len(o))}"
            )
        bad = sweep_block_costs(
            o,
            c,
            targets,
            start,
            float(max_leverage),
            float(costs.commission),
            float(costs.slippage),
            impact,
            cap,
            float(initial_equity),
            float(periods_per_year),
            out[lo : lo + len(chunk)],
        )
        if bad >= 0:
            raise ValueError(f"{strat.name} produced NaN targets for {chunk[bad]}")
    return out
