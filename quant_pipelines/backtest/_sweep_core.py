"""Many-run kernels for ``sweep``: batched fills across runs, segment matrices, ruin screening."""

from __future__ import annotations

import numpy as np

from quant_pipelines.backtest._core import fill_loop

# Below this many runs still trading at a given change-point rank, the per-run scalar loop is
# cheaper than one vector step (a vector step costs about as much as ~100 scalar fills).
_VECTOR_MIN_ACTIVE = 96


def batched_fills(
    opens: np.ndarray,
    run: np.ndarray,
    bar: np.ndarray,
    target: np.ndarray,
    n_runs: int,
    *,
    commission: float,
    slippage: float,
    initial_equity: float,
) -> tuple[np.ndarray, ...]:
    """Fills at the change points of many runs (ordered by run, then bar).

    Change points are processed by rank (1st fill of every run, then 2nd, ...) as vector steps
    mirroring :func:`quant_pipelines.backtest.fills._fill` operation by operation; the long tail of
    runs with many fills finishes with the scalar loop.

    Returns:
        ``(old_units, new_units, new_cash, equity, price, commission)`` per change point.
    """
    m = len(run)
    counts = np.bincount(run, minlength=n_runs)
    first = np.cumsum(counts) - counts
    rank = np.arange(m) - first[run]
    order = np.argsort(rank, kind="stable")
    per_rank = np.bincount(rank) if m else np.zeros(0, dtype=np.int64)
    bounds = np.concatenate(([0], np.cumsum(per_rank)))
    units = np.zeros(n_runs)
    cash = np.full(n_runs, float(initial_equity))
    old_u, new_u, new_c, eq, price, comm = (np.empty(m) for _ in range(6))
    op_all = opens[bar]
    up, down = 1.0 + slippage, 1.0 - slippage
    j = 0
    while j < len(per_rank) and per_rank[j] >= _VECTOR_MIN_ACTIVE:
        idx = order[bounds[j] : bounds[j + 1]]
        rows = run[idx]
        op = op_all[idx]
        t = target[idx]
        u = units[rows]
        c = cash[rows]
        e = c + u * op
        p_buy = op * up
        nu_buy = t * e / p_buy
        buy = nu_buy > u
        p_sell = op * down
        nu_sell = t * e / p_sell
        sell = ~buy & (nu_sell < u)
        p = np.where(buy, p_buy, np.where(sell, p_sell, op))
        nu = np.where(buy, nu_buy, np.where(sell, nu_sell, u))
        d = nu - u
        fee = commission * np.abs(d) * p
        nc = np.where(buy | sell, c - d * p - fee, c)
        old_u[idx], new_u[idx], new_c[idx], eq[idx], price[idx], comm[idx] = u, nu, nc, e, p, fee
        units[rows] = nu
        cash[rows] = nc
        j += 1
    if j < len(per_rank):
        for r in np.flatnonzero(counts > j).tolist():
            lo, hi = int(first[r]) + j, int(first[r] + counts[r])
            u0, c0 = float(units[r]), float(cash[r])
            nu_l, nc_l, e_l, p_l, f_l = fill_loop(
                op_all[lo:hi].tolist(), target[lo:hi].tolist(), u0, c0, commission, slippage
            )
            new_u[lo:hi], new_c[lo:hi], eq[lo:hi], price[lo:hi], comm[lo:hi] = (
                nu_l,
                nc_l,
                e_l,
                p_l,
                f_l,
            )
            old_u[lo] = u0
            old_u[lo + 1 : hi] = new_u[lo : hi - 1]
    return old_u, new_u, new_c, eq, price, comm


class RangeExtrema:
    """O(1) range min / max queries over a 1-D array (sparse tables)."""

    def __init__(self, x: np.ndarray) -> None:
        self._min = [x]
        self._max = [x]
        span = 1
        while 2 * span <= len(x):
            self._min.append(np.minimum(self._min[-1][:-span], self._min[-1][span:]))
            self._max.append(np.maximum(self._max[-1][:-span], self._max[-1][span:]))
            span *= 2

    def query(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Min and max of ``x[lo..hi]`` (inclusive; requires ``lo <= hi``)."""
        length = hi - lo + 1
        level = np.floor(np.log2(length)).astype(np.int64)
        mins = np.empty(len(lo))
        maxs = np.empty(len(lo))
        for k in np.unique(level).tolist():
            sel = level == k
            a, b = lo[sel], hi[sel] - (1 << k) + 1
            mins[sel] = np.minimum(self._min[k][a], self._min[k][b])
            maxs[sel] = np.maximum(self._max[k][a], self._max[k][b])
        return mins, maxs


def segment_matrix(
    run: np.ndarray,
    bar: np.ndarray,
    new_units: np.ndarray,
    new_cash: np.ndarray,
    n_runs: int,
    n_bars: int,
    initial_equity: float,
) -> tuple[np.ndarray, ...]:
    """Per-run segments (constant units and cash between fills).

    Args:
        run: Run of each change point (0..n_runs-1, sorted).
        bar: Bar of each change point.
        new_units: Units after each fill.
        new_cash: Cash after each fill.
        n_runs: Runs in this block.
        n_bars: Bars per run.
        initial_equity: Starting cash.

    Returns:
        ``(seg_run, seg_start, seg_len, seg_units, seg_cash)``, ordered by run then start.
    """
    counts = np.bincount(run, minlength=n_runs)
    seg_first = np.cumsum(counts + 1) - (counts + 1)
    cp_first = np.cumsum(counts) - counts
    total = n_runs + len(run)
    pos_cp = seg_first[run] + 1 + (np.arange(len(run)) - cp_first[run])
    seg_run = np.empty(total, dtype=np.int64)
    seg_start = np.empty(total, dtype=np.int64)
    seg_u = np.empty(total)
    seg_c = np.empty(total)
    runs = np.arange(n_runs)
    seg_run[seg_first], seg_start[seg_first] = runs, 0
    seg_u[seg_first], seg_c[seg_first] = 0.0, initial_equity
    seg_run[pos_cp], seg_start[pos_cp] = run, bar
    seg_u[pos_cp], seg_c[pos_cp] = new_units, new_cash
    flat = seg_run * n_bars + seg_start
    seg_len = np.diff(np.append(flat, n_runs * n_bars))
    return seg_run, seg_start, seg_len, seg_u, seg_c
