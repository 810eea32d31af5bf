"""One bar of the portfolio simulator, compiled from the portfolio engine's own per-bar pieces.

:func:`portfolio_step` is the body of ``backtest.portfolio._kernel.book_loop`` for one bar, in
the engine's order: the targets decided at bar t's close become orders (``decide_orders``), and
at bar t+1 the book is valued at the open (``open_equity``, ruin if zero or below), the orders
of the symbols trading that day are filled (``fill_bar``, which calls ``fills.fill_order``),
and the book is marked at the close (``mark_close``). The same targets therefore give the
engine's equity: the simulator tests compare the two to 1e-9.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quant_pipelines.backtest.fills import JIT_OPTIONS
from quant_pipelines.backtest.portfolio._kernel import (
    decide_orders,
    fill_bar,
    mark_close,
    open_equity,
)


@njit(**JIT_OPTIONS)
def portfolio_step(
    t: int,
    row: np.ndarray,
    mode: int,
    eq: float,
    cash: float,
    opens: np.ndarray,
    closes: np.ndarray,
    units: np.ndarray,
    last: np.ndarray,
    in_force: np.ndarray,
    tgt: np.ndarray,
    pending: np.ndarray,
    sleeve: np.ndarray,
    commission: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    impact: np.ndarray,
    cap: np.ndarray,
    ev_i: np.ndarray,
    ev_f: np.ndarray,
    started: np.ndarray,
    bench_units: np.ndarray,
    share: float,
) -> tuple[float, float, bool]:
    """Order ``row`` at bar t's close, fill at bar t+1's open, mark at bar t+1's close.

    The arrays are the book's state (updated in place, as in ``book_loop``); ``ev_i``/``ev_f``
    are scratch event rows with room for one fill per symbol.

    Args:
        t: The decision bar.
        row: Target weights decided at bar t's close (clean and capped).
        mode: ``_kernel.ON_CHANGE`` or ``_kernel.SCHEDULE`` (every bar is a rebalance bar).
        eq: Equity at bar t's close.
        cash: Cash at bar t's close.

    Returns:
        ``(cash, equity at bar t+1's close, ruined)``; when ruined (equity at the open or the
        close zero or below) the equity is 0.
    """
    decide_orders(mode, True, 0.0, row, eq, units, last, in_force, tgt, pending)
    k = t + 1
    e = open_equity(k, cash, opens, units, last)
    if e <= 0.0:  # ruined at the open: no fill
        return cash, 0.0, True
    cash, _ = fill_bar(k, e, cash, 0, opens, units, tgt, pending, sleeve, commission, up, down,
                       impact, cap, ev_i, ev_f)  # fmt: skip
    eq, _ = mark_close(k, cash, closes, units, last, started, bench_units, share)
    if eq <= 0.0:
        return cash, 0.0, True
    return cash, eq, False
