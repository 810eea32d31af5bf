"""The single-run accounting core: change points, the fill loops, segments and ruin.

With flat costs the book trades only where the target in force changes (:func:`change_bars`,
:func:`fill_loop`). With volume-share costs an order the participation cap cuts keeps trading
at the following opens until its target is reached or replaced (:func:`capped_fill_loop`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from quant_pipelines.backtest.costs import CostTerms
from quant_pipelines.backtest.fills import JIT_OPTIONS, fill_at_open, fill_order


class ChangePoints(NamedTuple):
    """Fills at change points, flat over one or many runs (ordered by run, then bar).

    ``run`` is the run (column) number, ``bar`` the bar whose open filled; ``old``/``new`` are
    units before/after, ``cash`` is cash after, ``equity`` is pre-fill equity at the open,
    ``open`` the open price, ``price`` the fill price and ``commission`` the commission.
    """

    run: np.ndarray
    bar: np.ndarray
    old: np.ndarray
    new: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    open: np.ndarray
    price: np.ndarray
    commission: np.ndarray

    def take(self, mask: np.ndarray) -> ChangePoints:
        """The change points selected by a boolean mask or an index array."""
        return ChangePoints(*(a[mask] for a in self))


class Path(NamedTuple):
    """One run's bar-level path and its fills."""

    units: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    cps: ChangePoints
    ruin_bar: int
    ruin_at_open: bool
    end_units: float


def change_bars(targets: np.ndarray) -> np.ndarray:
    """Bars (>= 1) at whose open the book trades: where the in-force target changes.

    The target in force at bar k >= 1 is ``targets[k-1]`` (0 before the first decision), so
    bar 1 trades if ``targets[0] != 0`` and bar k >= 2 if ``targets[k-1] != targets[k-2]``.
    """
    n = len(targets)
    if n < 2:
        return np.zeros(0, dtype=np.int64)
    changed = np.empty(n - 1, dtype=bool)
    changed[0] = targets[0] != 0.0
    np.not_equal(targets[1:-1], targets[:-2], out=changed[1:])
    return np.flatnonzero(changed) + 1


def simulate(
    opens: np.ndarray,
    closes: np.ndarray,
    targets: np.ndarray,
    *,
    commission: float,
    slippage: float,
    initial_equity: float,
    terms: CostTerms | None = None,
) -> Path:
    """Run the accounting for one target path (already clipped, finite).

    The fill loop visits change points only (and, with a participation cap, the opens an
    order carries to); units and cash are constant in between, so the bar-level path is a
    repeat of the per-segment values and equity is ``cash + units * close``.

    Args:
        opens: Open prices.
        closes: Close prices.
        targets: Target exposure decided at each bar's close.
        commission: Commission rate.
        slippage: Slippage as a fraction.
        initial_equity: Starting cash.
        terms: Per-bar impact and cap of volume-share costs; None for flat costs.

    Returns:
        The :class:`Path`, truncated at ruin (flat zero equity from the ruin bar on).
    """
    n = len(opens)
    if terms is None:
        bars = change_bars(targets)
        filled = fill_loop(
            np.ascontiguousarray(opens[bars], dtype=np.float64),
            np.ascontiguousarray(targets[bars - 1], dtype=np.float64),
            0.0,
            float(initial_equity),
            float(commission),
            float(slippage),
        )
    else:
        bars, filled = capped_fill_loop(
            np.ascontiguousarray(opens, dtype=np.float64),
            np.ascontiguousarray(targets, dtype=np.float64),
            np.ascontiguousarray(terms.impact, dtype=np.float64),
            np.ascontiguousarray(terms.cap, dtype=np.float64),
            float(initial_equity),
            float(commission),
            float(slippage),
        )
    seg_u = np.concatenate(([0.0], filled[0]))
    seg_c = np.concatenate(([float(initial_equity)], filled[1]))
    lengths = np.diff(np.concatenate(([0], bars, [n])))
    units = np.repeat(seg_u, lengths)
    cash = np.repeat(seg_c, lengths)
    equity = cash + units * closes
    m = len(bars)
    new = seg_u[1:]
    cps = ChangePoints(
        np.zeros(m, dtype=np.int64),
        bars,
        seg_u[:-1],
        new,
        filled[1],
        filled[2],
        opens[bars],
        filled[3],
        filled[4],
    )
    ruin_bar, at_open = _first_ruin(opens, units, cash, equity)
    if ruin_bar < 0:
        return Path(units, cash, equity, cps, -1, False, float(units[-1]))
    end_units = float(units[ruin_bar - 1] if at_open else units[ruin_bar])
    units[ruin_bar:] = 0.0
    cash[ruin_bar:] = 0.0
    equity[ruin_bar:] = 0.0
    keep = (bars < ruin_bar) | ((bars == ruin_bar) & (not at_open))
    return Path(units, cash, equity, cps.take(keep), ruin_bar, at_open, end_units)


@njit(**JIT_OPTIONS)
def fill_loop(
    ops: np.ndarray,
    tg: np.ndarray,
    u: float,
    c: float,
    commission: float,
    slippage: float,
) -> np.ndarray:
    """Apply targets ``tg`` at opens ``ops`` in sequence from units ``u`` and cash ``c``.

    Each step is :func:`~quant_pipelines.backtest.fills.fill_at_open`, the fill arithmetic
    every consumer shares.

    Returns:
        A ``(5, len(ops))`` array: rows are new units, new cash, pre-fill equity, fill price
        and commission.
    """
    m = len(ops)
    out = np.empty((5, m))
    up, down = 1.0 + slippage, 1.0 - slippage
    for j in range(m):
        op = ops[j]
        e = c + u * op
        u, c, p, fee, _ = fill_at_open(u, c, tg[j], op, e, commission, up, down)
        out[0, j] = u
        out[1, j] = c
        out[2, j] = e
        out[3, j] = p
        out[4, j] = fee
    return out


@njit(**JIT_OPTIONS)
def capped_fill_loop(
    opens: np.ndarray,
    targets: np.ndarray,
    impact: np.ndarray,
    cap: np.ndarray,
    c: float,
    commission: float,
    slippage: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Fills of one target path under volume-share costs, from flat with cash ``c``.

    At bar k's open the book trades towards the target in force (``targets[k-1]`` once it
    changes) while its order is pending: a new target makes it pending, a fill the cap
    (``cap[k-1]``) cut leaves it pending, any other fill completes it. Each fill is
    :func:`~quant_pipelines.backtest.fills.fill_order` with the decision bar's terms.

    Returns:
        The bars that traded, and a ``(5, n_fills)`` array as :func:`fill_loop`'s.
    """
    n = len(opens)
    bars = np.empty(n, dtype=np.int64)
    out = np.empty((5, n))
    up, down = 1.0 + slippage, 1.0 - slippage
    u = 0.0
    in_force = 0.0
    pending = False
    m = 0
    for k in range(1, n):
        t = targets[k - 1]
        if t != in_force:
            in_force = t
            pending = True
        if pending:
            op = opens[k]
            e = c + u * op
            u, c, p, fee, traded, pending = fill_order(
                u, c, in_force, op, e, commission, up, down, impact[k - 1], cap[k - 1]
            )
            if traded:
                bars[m] = k
                out[0, m] = u
                out[1, m] = c
                out[2, m] = e
                out[3, m] = p
                out[4, m] = fee
                m += 1
    return bars[:m].copy(), out[:, :m].copy()


def _first_ruin(
    opens: np.ndarray, units: np.ndarray, cash: np.ndarray, equity: np.ndarray
) -> tuple[int, bool]:
    """First bar whose pre-fill open equity or close equity is <= 0, and whether at the open."""
    n = len(opens)
    open_eq = cash[:-1] + units[:-1] * opens[1:]
    if equity.min() > 0.0 and (n < 2 or open_eq.min() > 0.0):
        return -1, False
    at_close = np.flatnonzero(equity <= 0.0)
    first_close = int(at_close[0]) if len(at_close) else n
    at_open = np.flatnonzero(open_eq <= 0.0)
    first_open = int(at_open[0]) + 1 if len(at_open) else n
    if first_open <= first_close and first_open < n:
        return first_open, True
    return first_close, False
