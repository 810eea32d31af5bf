"""A universe of bar frames on one clock: validation, alignment and rebalance dates.

Symbols on different calendars are aligned on the union of their sessions. A symbol's close is
carried forward over sessions it does not trade (it is marked at its last close, as the
portfolio engine does) and is NaN before its first bar. Everything here is causal: a value at
union bar t depends on bars stamped at or before t only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.backtest.portfolio.rebalance import CALENDAR_RULES, calendar_mask

REBALANCE_RULES: tuple[str, ...] = CALENDAR_RULES
"""The calendar rules a strategy rebalances on (one definition: ``rebalance.calendar_mask``)."""

Rebalance = str | int | Collection[pd.Timestamp]


@dataclass(frozen=True)
class Panel:
    """Closes and returns of a universe on the union of its sessions.

    Attributes:
        index: The union of the symbols' timestamps (sorted, unique).
        symbols: Symbol names, in the order of the input mapping.
        bars: The validated input frames, by symbol.
        close: ``(n_bars, n_symbols)`` closes carried forward; NaN before a symbol's first bar.
        returns: Close-to-close simple returns of ``close``; NaN up to a symbol's first bar.
        start: Union position of each symbol's first bar.
        positions: Union position of each bar of each symbol.
    """

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    bars: Mapping[str, pd.DataFrame]
    close: np.ndarray
    returns: np.ndarray
    start: np.ndarray
    positions: tuple[np.ndarray, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_bars, n_symbols)``."""
        return self.close.shape

    def align(self, symbol: str, values: np.ndarray) -> np.ndarray:
        """One symbol's per-bar values moved onto the union, carried forward, NaN before start.

        Args:
            symbol: A symbol of the panel.
            values: One value per bar of ``bars[symbol]``.
        """
        out = np.full(len(self.index), np.nan)
        out[self.positions[self.symbols.index(symbol)]] = values
        return _ffill_rows(out[:, None])[:, 0]

    def frame(self, values: np.ndarray) -> pd.DataFrame:
        """An ``(n_bars, n_symbols)`` array as a DataFrame on the panel's index and symbols."""
        return pd.DataFrame(values, index=self.index, columns=list(self.symbols))


def build_panel(bars: Mapping[str, pd.DataFrame], *, min_symbols: int = 1, who: str = "") -> Panel:
    """Validate a universe of bar frames and align their closes on the union of sessions.

    Args:
        bars: Bar frames by symbol (a ``close`` column and a sorted, unique DatetimeIndex).
        min_symbols: The fewest symbols accepted.
        who: The caller's name, for error messages.

    Returns:
        The :class:`Panel`.

    Raises:
        TypeError: If ``bars`` is not a mapping of DataFrames.
        ValueError: With fewer than ``min_symbols`` symbols, an empty frame, a bad index, mixed
            tz-aware and naive timestamps, or a close that is NaN, infinite or not positive
            (the message names the symbol and the timestamp).
    """
    label = f"{who}: " if who else ""
    if not isinstance(bars, Mapping):
        raise TypeError(f"{label}bars must be a mapping of symbol -> DataFrame")
    if len(bars) < min_symbols:
        raise ValueError(
            f"{label}needs a universe of at least {min_symbols} symbols, got {len(bars)}: "
            f"{list(bars)}"
        )
    frames = {str(s): _check_frame(str(s), f, label) for s, f in bars.items()}
    aware = {s: f.index.tz is not None for s, f in frames.items()}
    if len(set(aware.values())) > 1:
        naive = sorted(s for s, a in aware.items() if not a)
        raise ValueError(f"{label}timestamps of {naive} are tz-naive while others are tz-aware")
    if all(aware.values()):
        frames = {s: _utc(f) for s, f in frames.items()}
    index = frames[next(iter(frames))].index
    for f in frames.values():
        index = index.union(f.index)
    index = pd.DatetimeIndex(index, name="ts", freq=None)
    n, m = len(index), len(frames)
    close = np.full((n, m), np.nan)
    start = np.empty(m, dtype=np.int64)
    positions = []
    for j, f in enumerate(frames.values()):
        pos = index.get_indexer(f.index)
        close[pos, j] = f["close"].to_numpy(dtype=np.float64)
        start[j] = pos[0]
        positions.append(pos)
    close = _ffill_rows(close)
    returns = np.full((n, m), np.nan)
    returns[1:] = close[1:] / close[:-1] - 1.0
    return Panel(index, tuple(frames), frames, close, returns, start, tuple(positions))


def _check_frame(symbol: str, frame: object, label: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"{label}bars of {symbol!r} must be a DataFrame, got {type(frame).__name__}"
        )
    if len(frame) == 0:
        raise ValueError(f"{label}bars of {symbol!r} are empty")
    if "close" not in frame.columns:
        raise ValueError(f"{label}bars of {symbol!r} have no 'close' column")
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise ValueError(f"{label}bars of {symbol!r} need a DatetimeIndex")
    if not (idx.is_monotonic_increasing and idx.is_unique):
        raise ValueError(f"{label}bars of {symbol!r}: index must be sorted with unique timestamps")
    c = frame["close"].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(c) & (c > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{label}close of {symbol!r} must be finite and > 0; got {c[i]!r} at {idx[i]} "
            "(drop or repair the bar first)"
        )
    return frame


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    if str(frame.index.tz) == "UTC":
        return frame
    out = frame.copy()
    out.index = frame.index.tz_convert("UTC")
    return out


def _ffill_rows(x: np.ndarray) -> np.ndarray:
    """Carry the last finite value of each column forward (NaN before the first one)."""
    n = len(x)
    has = np.isfinite(x)
    idx = np.where(has, np.arange(n)[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = np.take_along_axis(x, np.maximum(idx, 0), axis=0)
    out[idx < 0] = np.nan
    return out


def rebalance_mask(index: pd.DatetimeIndex, rebalance: Rebalance) -> np.ndarray:
    """Which bars are rebalance dates, decided from timestamps up to each bar only.

    Args:
        index: The bars' timestamps.
        rebalance: ``"daily"`` (every bar), ``"weekly"`` / ``"monthly"`` (the first bar of each
            calendar week / month, in UTC, and the first bar), a positive int ``k`` (every k-th
            bar from the first), or a collection of timestamps (those of them in ``index``).

    Returns:
        A boolean array, one value per bar.

    Raises:
        ValueError: For an unknown rule or a non-positive interval.
    """
    n = len(index)
    if isinstance(rebalance, str):
        if rebalance not in REBALANCE_RULES:
            raise ValueError(
                f"unknown rebalance rule {rebalance!r}; use one of {list(REBALANCE_RULES)}, "
                "a bar interval, or a set of dates"
            )
        return calendar_mask(index, rebalance)
    if isinstance(rebalance, int | np.integer) and not isinstance(rebalance, bool):
        if rebalance < 1:
            raise ValueError(f"rebalance interval must be >= 1 bar, got {rebalance}")
        return np.arange(n) % int(rebalance) == 0
    if isinstance(rebalance, Collection):
        dates = pd.DatetimeIndex(list(rebalance))
        if index.tz is not None and dates.tz is None:
            dates = dates.tz_localize("UTC")
        return np.asarray(index.isin(dates))
    raise ValueError(f"unknown rebalance rule {rebalance!r}")
