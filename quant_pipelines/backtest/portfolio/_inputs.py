"""The portfolio engine's inputs: bars aligned on the union of sessions, costs, clean weights.

Every check names what is wrong: the symbol, the column, the date.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from quant_pipelines.backtest._frame import float_columns
from quant_pipelines.backtest.costs import CostModel, CostTerms, cost_model
from quant_pipelines.backtest.engine import bar_arrays


class Universe(NamedTuple):
    """Bars of the symbols on the union of their sessions (NaN where a symbol has none).

    Attributes:
        index: The union of the symbols' timestamps.
        symbols: Symbol names, in the weights' column order.
        opens: ``(n_bars, n_symbols)`` opens.
        closes: ``(n_bars, n_symbols)`` closes.
        impact: ``(n_bars, n_symbols)``: impact term of a fill at each bar (its symbol's
            previous session's ``CostTerms.impact``; 0 for flat costs); one row, for every
            bar, when all the costs are flat.
        cap: Like ``impact``: most units a fill at each bar may trade (``inf`` for flat costs;
            0 at a symbol's first session under volume-share costs: no history yet).
        commission: Commission rate per symbol.
        slippage: Base slippage fraction per symbol.
        models: The cost model per symbol.
    """

    index: pd.Index
    symbols: tuple[str, ...]
    opens: np.ndarray
    closes: np.ndarray
    impact: np.ndarray
    cap: np.ndarray
    commission: np.ndarray
    slippage: np.ndarray
    models: tuple[CostModel, ...]


def cost_models(
    costs: CostModel | Mapping[str, CostModel], symbols: tuple[str, ...]
) -> tuple[CostModel, ...]:
    """One cost model per symbol, from one model or a mapping ``symbol -> model``.

    Raises:
        TypeError: If a value is not a cost model.
        ValueError: If the mapping lacks a symbol.
    """
    if isinstance(costs, Mapping):
        missing = [s for s in symbols if s not in costs]
        if missing:
            raise ValueError(f"costs has no model for symbol {missing[0]!r}")
        return tuple(cost_model(costs[s], f"costs[{s!r}]") for s in symbols)
    model = cost_model(costs)
    return (model,) * len(symbols)


def align(
    bars: Mapping[str, pd.DataFrame], symbols: tuple[str, ...], models: tuple[CostModel, ...]
) -> Universe:
    """Validate each symbol's bars and lay them on the union of sessions.

    Raises:
        TypeError: If ``bars`` is not a mapping or a symbol's bars are not a DataFrame.
        ValueError: For a symbol without bars, bars missing a column, an invalid price or
            volume, an unsorted index, or tz-aware and tz-naive indexes mixed.
    """
    if not isinstance(bars, Mapping):
        raise TypeError(f"bars must be a mapping of symbol -> DataFrame, got {type(bars).__name__}")
    cols: list[tuple[np.ndarray, np.ndarray, pd.Index, pd.DataFrame]] = []
    for s in symbols:
        if s not in bars:
            raise ValueError(f"symbol {s!r} is in the weights but has no bars")
        frame = bars[s]
        try:
            o, c = bar_arrays(frame)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"bars of {s!r}: {exc}") from None
        cols.append((o, c, frame.index, frame))
    index, same = _union([x[2] for x in cols], symbols)
    n, width = len(index), len(symbols)
    vs = any(m.needs_volume for m in models)
    fills: list[tuple[np.ndarray, np.ndarray]] = []  # per symbol, on its own sessions
    for j, ((_, c, _, frame), model) in enumerate(zip(cols, models, strict=True)):
        if not vs:
            break
        shifted = np.zeros(len(c)), np.full(len(c), np.inf)
        if model.needs_volume:
            # A fill uses its symbol's previous session's terms; none at its first session.
            terms = _terms(model, frame, c, symbols[j])
            shifted[0][1:] = terms.impact[:-1]
            shifted[1][0] = 0.0
            shifted[1][1:] = terms.cap[:-1]
        fills.append(shifted)
    if same:
        opens = np.stack([x[0] for x in cols], axis=1)
        closes = np.stack([x[1] for x in cols], axis=1)
        if vs:
            impact = np.stack([f[0] for f in fills], axis=1)
            cap = np.stack([f[1] for f in fills], axis=1)
    else:
        opens = np.full((n, width), np.nan)
        closes = np.full((n, width), np.nan)
        impact = np.zeros((n if vs else 1, width))
        cap = np.full((n if vs else 1, width), np.inf)
        for j, (o, c, idx, _) in enumerate(cols):
            pos = index.get_indexer(idx)
            opens[pos, j] = o
            closes[pos, j] = c
            if vs:
                impact[pos, j], cap[pos, j] = fills[j]
    if not vs:  # flat costs: one row of terms for every bar
        impact, cap = np.zeros((1, width)), np.full((1, width), np.inf)
    commission = np.array([m.commission for m in models], dtype=np.float64)
    slippage = np.array([m.slippage for m in models], dtype=np.float64)
    return Universe(index, symbols, opens, closes, impact, cap, commission, slippage, models)


def _terms(model: CostModel, frame: pd.DataFrame, closes: np.ndarray, symbol: str) -> CostTerms:
    if "volume" not in frame.columns:
        raise ValueError(
            f"bars of {symbol!r} have no 'volume' column, which {type(model).__name__} need"
        )
    (volume,) = float_columns(frame, ("volume",))
    try:
        return model.terms(volume, closes, index=frame.index)
    except ValueError as exc:
        raise ValueError(f"bars of {symbol!r}: {exc}") from None


def _union(indexes: list[pd.Index], symbols: tuple[str, ...]) -> tuple[pd.Index, bool]:
    """The union of the indexes, and whether they are all the same."""
    first = indexes[0]
    if all(ix is first or ix.equals(first) for ix in indexes[1:]):
        return first, True
    tz = [getattr(ix, "tz", None) is not None for ix in indexes]
    if any(tz) and not all(tz):
        naive = [s for s, aware in zip(symbols, tz, strict=True) if not aware]
        raise ValueError(f"bars of {naive} have tz-naive timestamps while others are tz-aware")
    out = first
    for ix in indexes[1:]:
        out = out.union(ix)
    return out, False


def target_weights(
    weights: pd.DataFrame,
    index: pd.Index,
    *,
    max_gross_leverage: float,
    allow_short: bool,
) -> np.ndarray:
    """The weights as a clean ``(n_bars, n_symbols)`` float array.

    Negative weights are set to 0 unless ``allow_short``. A row whose gross exposure
    ``sum(|w|)`` exceeds ``max_gross_leverage`` is scaled down in proportion to the cap (the
    documented clip; the same as ``run_backtest``'s clip for one symbol).

    Raises:
        ValueError: If the weights are not on ``index``, or hold a NaN or infinite value (the
            message names the first such date and symbol).
    """
    if not index.equals(weights.index):
        raise ValueError(
            f"weights must be on the union of the bars' sessions ({len(index)} rows from "
            f"{index[0]} to {index[-1]}), got {len(weights)} rows; reindex them, e.g. "
            "weights.reindex(index).ffill().fillna(0.0)"
        )
    try:
        w = weights.to_numpy(dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weights must be numbers: {exc}") from None
    gross = np.abs(w).sum(axis=1)
    if not np.isfinite(gross).all():  # a NaN or an infinity anywhere reaches its row's sum
        bad = np.argwhere(~np.isfinite(w))
        t, j = bad[0] if len(bad) else (int(np.argmax(~np.isfinite(gross))), 0)  # overflow
        raise ValueError(
            f"weight of {weights.columns[j]!r} at {index[t]} is {float(w[t, j])!r}; weights "
            "must be finite (fill missing ones, e.g. fillna(0.0))"
        )
    if not allow_short:
        np.maximum(w, 0.0, out=w)
        gross = w.sum(axis=1)
    over = gross > max_gross_leverage
    if over.any():
        scale = np.ones(len(w))
        scale[over] = max_gross_leverage / gross[over]
        w *= scale[:, None]
    return np.ascontiguousarray(w)
