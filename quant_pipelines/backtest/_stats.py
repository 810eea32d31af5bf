"""Metric kernels over equity matrices of shape ``(n_bars, n_runs)`` (time on axis 0)."""

from __future__ import annotations

import math

import numpy as np

from quant_pipelines.backtest._keys import EQUITY_METRICS

_BLOCK = 32


class Workspace:
    """Reusable buffers for :func:`equity_stats` on ``(n_bars, <= width)`` matrices.

    Reusing them across blocks avoids re-faulting fresh pages for every large temporary.
    """

    def __init__(self, n_bars: int, width: int) -> None:
        self.n = n_bars
        size = n_bars * width
        self._f = [np.empty(size) for _ in range(5)]
        self._b = [np.empty(size, dtype=bool) for _ in range(2)]

    def f(self, i: int, rows: int, cols: int) -> np.ndarray:
        """Float buffer ``i`` as a C-contiguous ``(rows, cols)`` matrix."""
        return self._f[i][: rows * cols].reshape(rows, cols)

    def b(self, i: int, rows: int, cols: int) -> np.ndarray:
        """Bool buffer ``i`` as a C-contiguous ``(rows, cols)`` matrix."""
        return self._b[i][: rows * cols].reshape(rows, cols)


def running_max(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Running maximum along axis 0 (exact; blocked for wide matrices, where it is faster)."""
    n, w = x.shape
    if w < 8 or n < 4 * _BLOCK:
        return np.maximum.accumulate(x, axis=0, out=out)
    nb = n // _BLOCK
    head = nb * _BLOCK
    if out is None:
        out = np.empty_like(x)
    v = x[:head].reshape(nb, _BLOCK, w)
    o = out[:head].reshape(nb, _BLOCK, w)
    o[:, 0] = v[:, 0]
    for i in range(1, _BLOCK):
        np.maximum(o[:, i - 1], v[:, i], out=o[:, i])
    carry = np.maximum.accumulate(o[:, -1], axis=0)
    np.maximum(o[1:], carry[:-1, None, :], out=o[1:])
    for i in range(head, n):
        np.maximum(out[i - 1], x[i], out=out[i])
    return out


def _sumsq(x: np.ndarray) -> float:
    """Sum of squares. BLAS ``dot`` is fastest on short vectors, but on long ones OpenBLAS goes
    multi-threaded and can stall behind busy cores; ``einsum`` stays on this thread."""
    return float(np.dot(x, x)) if len(x) <= 8192 else float(np.einsum("i,i->", x, x))


def returns_matrix(equity: np.ndarray, *, safe: bool, out: np.ndarray | None = None) -> np.ndarray:
    """Bar returns ``E_t / E_{t-1} - 1`` for t >= 1 along axis 0 (0 after ruin when ``safe``)."""
    prev = equity[:-1]
    if safe:
        r = np.divide(equity[1:], prev, out=np.ones_like(prev), where=prev > 0.0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.divide(equity[1:], prev, out=out)
    r -= 1.0
    return r


def equity_stats(
    equity: np.ndarray,
    initial_equity: float,
    periods_per_year: float,
    *,
    safe: bool = True,
    work: Workspace | None = None,
) -> dict[str, np.ndarray]:
    """Return, risk and drawdown metrics per column of an equity matrix.

    Args:
        equity: Equity marked at each close, shape ``(n_bars, n_runs)``, finite and >= 0.
        initial_equity: Equity before the first bar.
        periods_per_year: Bars per year for annualisation.
        safe: Guard against zero equity (ruined runs); the sweep passes False for speed.
        work: Buffers to reuse (multi-column case only).

    Returns:
        Arrays (one value per run) keyed by metric name.
    """
    n, w = equity.shape
    if n < 2:
        return _finish(equity[-1], None, initial_equity, periods_per_year, n - 1)
    if w == 1:  # one run: 1-D numpy calls are several times cheaper than (n, 1) ones
        e = equity[:, 0]
        r = returns_matrix(e, safe=safe)
        neg = np.minimum(r, 0.0)
        peak = np.maximum.accumulate(e)
        at_peak = np.flatnonzero(e >= peak)
        gaps = np.diff(np.concatenate((at_peak, [n])))
        sums = (
            np.array([r.sum()]),
            np.array([_sumsq(r)]),
            np.array([_sumsq(neg)]),
            np.array([(e / peak).min()]),
            np.array([float(gaps.max() - 1)]),
        )
    else:
        ws = work if work is not None else Workspace(n, w)
        r = returns_matrix(equity, safe=safe, out=None if safe else ws.f(0, n - 1, w))
        neg = np.minimum(r, 0.0, out=ws.f(1, n - 1, w))
        s1 = r.sum(axis=0)
        s2 = np.einsum("ij,ij->j", r, r)
        d2 = np.einsum("ij,ij->j", neg, neg)
        peak = running_max(equity, out=ws.f(2, n, w))
        ratio = np.divide(equity, peak, out=ws.f(3, n, w))
        sums = (s1, s2, d2, ratio.min(axis=0), _drawdown_duration(equity, peak, ws))
    return _finish(equity[-1], sums, initial_equity, periods_per_year, n - 1)


def _finish(
    final: np.ndarray,
    sums: tuple[np.ndarray, ...] | None,
    initial_equity: float,
    periods_per_year: float,
    m: int,
) -> dict[str, np.ndarray]:
    """Metrics from per-run sums of r, r^2, min(r,0)^2, min drawdown ratio and duration."""
    if sums is None:  # a single bar: no returns
        cols = [(f, 0.0, 0.0, 0.0, 1.0, 0.0) for f in final.tolist()]
    else:
        cols = list(zip(final.tolist(), *(x.tolist() for x in sums), strict=True))
    rows = [_finish_one(*col, initial_equity, periods_per_year, m) for col in cols]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in EQUITY_METRICS}


def _finish_one(
    final: float,
    s1: float,
    s2: float,
    d2: float,
    min_ratio: float,
    duration: float,
    initial_equity: float,
    ppy: float,
    m: int,
) -> dict[str, float]:
    """One run's metrics from its sums (plain floats: cheaper than numpy for one run)."""
    if m < 1:
        out = dict.fromkeys(EQUITY_METRICS, 0.0)
        out["total_return"] = final / initial_equity - 1.0
        out["max_drawdown"] = min_ratio - 1.0
        out["max_drawdown_duration"] = duration
        return out
    mean = s1 / m
    var = max((s2 - s1 * mean) / (m - 1), 0.0) if m > 1 else 0.0
    std = math.sqrt(var)
    down = math.sqrt(d2 / m)
    ann = math.sqrt(ppy)
    mdd = min_ratio - 1.0
    sharpe = mean / std * ann if std > 0 else 0.0
    sortino = mean / down * ann if down > 0 else (math.inf if mean > 0 else 0.0)
    if final > 0:
        try:
            cagr = (final / initial_equity) ** (ppy / m) - 1.0
        except OverflowError:
            cagr = math.inf
    else:
        cagr = -1.0
    calmar = cagr / -mdd if mdd < 0 else (math.inf if cagr > 0 else 0.0)
    return {
        "total_return": final / initial_equity - 1.0,
        "cagr": cagr,
        "annual_volatility": std * ann,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "max_drawdown": mdd,
        "max_drawdown_duration": duration,
    }


def _drawdown_duration(equity: np.ndarray, peak: np.ndarray, ws: Workspace) -> np.ndarray:
    """Longest run of consecutive bars whose equity is below its running peak, per column."""
    n, w = equity.shape
    at_peak = np.greater_equal(equity, peak, out=ws.b(0, n, w))
    by_col = ws.b(1, w, n)
    np.copyto(by_col, at_peak.T)
    col, bar = np.divmod(np.flatnonzero(by_col), n)  # ordered by column, then bar
    nxt = np.empty_like(bar)
    nxt[:-1] = np.where(col[1:] == col[:-1], bar[1:], n)
    nxt[-1] = n
    first = np.searchsorted(col, np.arange(w))  # bar 0 is always at its peak
    return np.maximum.reduceat(nxt - bar - 1, first).astype(np.float64)
