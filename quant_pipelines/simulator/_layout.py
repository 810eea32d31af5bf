"""Array layout helpers of the simulator: episode ranges and the precomputed observation rows."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _position(index: pd.Index, value: int | str | pd.Timestamp, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a bar position or a timestamp, got {value!r}")
    if isinstance(value, int | np.integer):
        pos = int(value)
        if not 0 <= pos <= len(index):
            raise ValueError(f"{name}={pos} is outside the bars (0..{len(index)})")
        return pos
    ts = pd.Timestamp(value)
    if ts.tzinfo is None and getattr(index, "tz", None) is not None:
        ts = ts.tz_localize(index.tz)
    return int(index.searchsorted(ts, side="left"))


def resolve_range(
    index: pd.Index,
    start: int | str | pd.Timestamp | None,
    end: int | str | pd.Timestamp | None,
) -> tuple[int, int]:
    """Bar positions ``[start, end)`` of an episode range given as positions or timestamps.

    A timestamp start is the first bar at or after it; a timestamp end excludes bars at or
    after it.

    Raises:
        ValueError: If the range holds fewer than two bars (no step is possible).
    """
    lo = 0 if start is None else _position(index, start, "start")
    hi = len(index) if end is None else _position(index, end, "end")
    if hi - lo < 2:
        raise ValueError(
            f"the episode range holds {max(hi - lo, 0)} bar(s); it needs at least 2 "
            f"(start={start!r}, end={end!r})"
        )
    return lo, hi


def episode_bounds(
    start: int,
    end: int,
    *,
    random_start: bool,
    episode_length: int | None,
    rng: np.random.Generator,
    forced: int | None = None,
) -> tuple[int, int]:
    """First bar and last bar of an episode inside ``[start, end)``.

    A random start is drawn uniformly so that a full ``episode_length`` fits when the range
    allows it (steady episode lengths), otherwise anywhere with at least one step left.

    Returns:
        ``(first, last)``: the episode observes bar ``first`` first and ends at bar ``last``.
    """
    if forced is not None:
        first = int(forced)
        if not start <= first <= end - 2:
            raise ValueError(f"start option {first} is outside [{start}, {end - 2}]")
    elif random_start:
        hi = end - 2 if episode_length is None else end - 1 - episode_length
        hi = max(hi, start)
        first = int(rng.integers(start, hi + 1))
    else:
        first = start
    last = end - 1 if episode_length is None else min(first + episode_length, end - 1)
    return first, last


def window_matrix(features: np.ndarray, window: int, *, extra: int = 0) -> np.ndarray:
    """Row t holds feature rows ``t-window+1 .. t`` flattened (oldest first), then ``extra`` zeros.

    Rows before the first full window are padded with zero feature rows.

    Args:
        features: ``(n, k)`` feature matrix.
        window: Rows per observation.
        extra: Trailing zero columns (filled per step: position, unrealised P&L).

    Returns:
        A C-contiguous float32 array of shape ``(n, window * k + extra)``.
    """
    n, k = features.shape
    padded = np.concatenate([np.zeros((window - 1, k), dtype=np.float32), features], axis=0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (n, k, window)
    flat = windows.transpose(0, 2, 1).reshape(n, window * k)
    out = np.zeros((n, window * k + extra), dtype=np.float32)
    out[:, : window * k] = flat
    return out
