"""Runs of identical closes and the previous usable row. Private to the quality package.

Pure NumPy helpers of :mod:`quant_pipelines.quality._prepare` (which re-exports them).
"""

from __future__ import annotations

import numpy as np


def run_positions(close: np.ndarray) -> np.ndarray:
    """1-based position of each row in its run of identical valid closes (1: a new value)."""
    n = len(close)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    valid = np.isfinite(close) & (close > 0)
    same = np.zeros(n, dtype=bool)
    same[1:] = (close[1:] == close[:-1]) & valid[1:] & valid[:-1]
    starts = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
    return np.arange(n) - starts + 1


def stale_repeats(close: np.ndarray, *, min_run: int) -> np.ndarray:
    """Rows whose run of identical closes, up to and including them, is ``min_run`` or longer.

    Causal: the bar that makes the run ``min_run`` long is the first flagged, and the earlier
    repeats of the run are never flagged retroactively.

    Args:
        close: Closes of unique, sorted rows (invalid closes break runs).
        min_run: Run length (identical closes, the first one included) that makes it stale.

    Returns:
        Boolean array.
    """
    return run_positions(close) >= max(int(min_run), 2)


def stale_runs(close: np.ndarray, *, min_run: int) -> np.ndarray:
    """Every repeat of a run that reaches ``min_run`` identical closes (for training masks).

    Not causal (a run's early repeats are known to be stale only once it is long): use it on
    data strictly before what is scored, e.g. to leave stale repeats out of a training window.
    """
    pos = run_positions(close)
    run_id = np.cumsum(pos == 1)
    longest = np.zeros(run_id.max() + 1 if len(pos) else 1, dtype=np.int64)
    np.maximum.at(longest, run_id, pos)
    return (pos > 1) & (longest[run_id] >= max(int(min_run), 2))


def previous_usable(usable: np.ndarray) -> np.ndarray:
    """For each row, the index of the last usable row strictly before it (-1 when none)."""
    n = len(usable)
    idx = np.where(usable, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    out = np.full(n, -1, dtype=np.int64)
    out[1:] = last[:-1]
    return out
