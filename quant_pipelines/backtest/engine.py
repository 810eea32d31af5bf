"""``run_backtest``: the vectorised, look-ahead-free single-instrument engine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.backtest._assemble import collect_metrics, metrics_dict
from quant_pipelines.backtest._core import simulate
from quant_pipelines.backtest._frame import float_columns
from quant_pipelines.backtest._trades import RunEnds
from quant_pipelines.backtest.costs import CostModel, CostTerms, FlatCosts, cost_model
from quant_pipelines.backtest.metrics import resolve_periods_per_year
from quant_pipelines.backtest.result import BacktestResult

DEFAULT_COSTS = FlatCosts()
DEFAULT_MAX_LEVERAGE = 1.0


def bar_arrays(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Validate bars for backtesting and return their open and close arrays.

    The arrays are float64 and may be read-only views of the frame's data.

    Raises:
        TypeError: If ``bars`` is not a DataFrame.
        ValueError: If bars are empty, lack open/close, have an unsorted or duplicated index,
            or hold a non-finite or non-positive open or close.
    """
    if not isinstance(bars, pd.DataFrame):
        raise TypeError(f"bars must be a pandas DataFrame, got {type(bars).__name__}")
    if len(bars) == 0:
        raise ValueError("bars are empty: nothing to backtest")
    o, c = float_columns(bars, ("open", "close"))
    idx = bars.index
    if not (idx.is_monotonic_increasing and idx.is_unique):
        raise ValueError("bars' index must be sorted ascending with unique timestamps")
    for name, x in (("open", o), ("close", c)):
        if not (x.min() > 0.0 and x.max() < np.inf):  # NaN fails the first test
            bad = int(np.flatnonzero(~(np.isfinite(x) & (x > 0)))[0])
            raise ValueError(f"{name} price must be finite and > 0; got {x[bad]!r} at {idx[bad]}")
    return o, c


def target_array(
    positions: pd.Series | np.ndarray | list[float], index: pd.Index, max_leverage: float
) -> np.ndarray:
    """Validate target exposures against the bars' index, clipped to ``max_leverage``.

    Raises:
        ValueError: On a misaligned index or length, or NaN targets.
    """
    if not (np.isfinite(max_leverage) and max_leverage > 0):
        raise ValueError(f"max_leverage must be a positive number, got {max_leverage!r}")
    if isinstance(positions, pd.Series):
        if positions.index is not index and not positions.index.equals(index):
            raise ValueError(
                "positions are not on the bars' index; align them first, e.g. "
                "positions.reindex(bars.index).fillna(0.0)"
            )
        arr = positions.to_numpy(dtype=np.float64)
    elif isinstance(positions, pd.DataFrame):
        raise TypeError("positions must be a Series or a 1-D array, not a DataFrame")
    else:
        arr = np.asarray(positions, dtype=np.float64)
        if arr.ndim != 1 or len(arr) != len(index):
            raise ValueError(
                f"positions must be 1-D with one value per bar ({len(index)}), "
                f"got shape {arr.shape}"
            )
    if np.isnan(arr).any():
        bad = int(np.flatnonzero(np.isnan(arr))[0])
        raise ValueError(
            f"positions contain NaN (first at {index[bad]}); fill them, e.g. fillna(0.0)"
        )
    return np.clip(arr, -max_leverage, max_leverage)


def cost_terms(costs: CostModel, bars: pd.DataFrame, closes: np.ndarray) -> CostTerms | None:
    """The per-bar terms of a volume-share model on ``bars`` (None for flat costs).

    Raises:
        TypeError: If ``costs`` is not a cost model.
        ValueError: If the model needs a volume column the bars lack, or volume is invalid.
    """
    if not cost_model(costs).needs_volume:
        return None
    if "volume" not in bars.columns:
        raise ValueError(f"bars have no 'volume' column, which {type(costs).__name__} need")
    (volume,) = float_columns(bars, ("volume",))
    return costs.terms(volume, closes, index=bars.index)


def run_backtest(
    bars: pd.DataFrame,
    positions: pd.Series | np.ndarray | list[float],
    *,
    costs: CostModel = DEFAULT_COSTS,
    initial_equity: float = 100_000.0,
    periods_per_year: float | None = None,
    asset_class: str | None = None,
    max_leverage: float = DEFAULT_MAX_LEVERAGE,
) -> BacktestResult:
    """Backtest target exposures on bars, filling each target at the next bar's open.

    ``positions[t]`` is the target exposure (fraction of equity; negative = short) decided at
    bar t's close. It is filled at bar t+1's open with slippage against the trader and a
    commission on traded notional (see :mod:`quant_pipelines.backtest.fills`); the target of the
    last bar is never filled. With :class:`~quant_pipelines.backtest.costs.VolumeShareCosts`
    the slippage grows with the traded share of trailing volume, and an order beyond the
    participation cap fills in parts at the following opens. The overnight gap is earned with
    the old holding, the intraday move with the new one. Equity is marked at every close; at
    zero or below the book goes flat for good.

    Args:
        bars: Bars in the project's schema (``open`` and ``close`` are used).
        positions: Target exposure per bar: a Series on ``bars.index`` or a same-length array.
        costs: The cost model: :class:`~quant_pipelines.backtest.costs.FlatCosts` or
            :class:`~quant_pipelines.backtest.costs.VolumeShareCosts` (reads ``volume``).
        initial_equity: Starting cash.
        periods_per_year: Annualisation factor; overrides ``asset_class``.
        asset_class: "equity" (252), "crypto" (365), "fx" (260), ...; 252 when both are None.
        max_leverage: Targets are clipped to ``[-max_leverage, max_leverage]``.

    Returns:
        The :class:`BacktestResult`.

    Raises:
        TypeError: If bars, positions or costs have the wrong type.
        ValueError: On empty or invalid bars, misaligned or NaN positions, or bad parameters.
    """
    cost_model(costs)
    o, c = bar_arrays(bars)
    index = bars.index
    targets = target_array(positions, index, max_leverage)
    if not (np.isfinite(initial_equity) and initial_equity > 0):
        raise ValueError(f"initial_equity must be positive, got {initial_equity!r}")
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    path = simulate(
        o,
        c,
        targets,
        commission=costs.commission,
        slippage=costs.slippage,
        initial_equity=float(initial_equity),
        terms=cost_terms(costs, bars, c),
    )
    n = len(o)
    rb = path.ruin_bar
    if rb < 0:
        end = (n - 1, n, c[-1], True)
    else:
        end = (
            rb,
            rb if path.ruin_at_open else rb + 1,
            o[rb] if path.ruin_at_open else c[rb],
            False,
        )
    ends = RunEnds(
        np.array([path.end_units]),
        np.array([path.equity[-1]]),
        np.array([end[0]]),
        np.array([end[1]]),
        np.array([end[2]]),
        np.array([end[3]]),
    )
    exposure = np.array([np.count_nonzero(path.units) / n])
    arrays, trades = collect_metrics(
        path.equity[:, None],
        path.cps,
        ends,
        exposure,
        initial_equity=float(initial_equity),
        periods_per_year=ppy,
        closes=c,
        safe=rb >= 0,
    )
    return BacktestResult(
        index=index,
        closes=c,
        targets=targets,
        units=path.units,
        equity=path.equity,
        trades=trades,
        metrics=metrics_dict(arrays, 0),
        costs=costs,
        initial_equity=float(initial_equity),
        periods_per_year=ppy,
        max_leverage=float(max_leverage),
        ruin_bar=rb,
    )
