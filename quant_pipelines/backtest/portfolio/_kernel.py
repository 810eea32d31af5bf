"""The portfolio engine's compiled loop: one cash account, bars x symbols, fills and marks.

:func:`book_loop` walks the union of sessions once. At each bar it (1) values the book at the
open (symbols without a session that day at their last close) and applies the ruin rule,
(2) fills every pending order of a symbol that trades that day with ``fills.fill_order``, the
fill arithmetic of every engine, against that one pre-fill equity, (3) marks the book and the
equal-weight buy-and-hold benchmark at the close, and (4) decides the orders of the next open
from the bar's target weights and the rebalance rule. Symbols are visited in column order.

Each symbol also has a *sleeve*: an account that starts with the initial equity and books
that symbol's fills only (the same ``fill_order`` call on the sleeve's cash). A sleeve's value
``sleeve cash + units * price`` moves with that symbol's P&L alone, so round-trip trades are
valued on it exactly as ``run_backtest`` values them on its equity; with one symbol the sleeve
*is* the book, bit for bit.

The per-bar pieces are functions of their own (:func:`open_equity`, :func:`fill_bar`,
:func:`mark_close`, :func:`decide_orders`) so that the portfolio simulator
(``simulator/_portfolio_step.py``) steps one bar with the very same compiled code.

Compiled with ``cache=True`` (see ``fills.JIT_OPTIONS``): after editing ``fills.fill_order``,
delete numba's cache (``find quant_pipelines -name '*.nb[ic]' -delete``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quant_pipelines.backtest.fills import JIT_OPTIONS, fill_order

ON_CHANGE, SCHEDULE, DRIFT = 0, 1, 2
"""Rebalance modes: a symbol trades when its target changes; every symbol trades back to its
target on scheduled bars; every symbol trades back once some weight drifts beyond a band."""

# Rows of the event arrays.
EV_BAR, EV_SYMBOL = 0, 1
EV_OLD, EV_NEW, EV_PRICE, EV_FEE, EV_OPEN, EV_EQUITY, EV_CASH, EV_SLEEVE = range(8)


@njit(**JIT_OPTIONS)
def _grow(ev_i: np.ndarray, ev_f: np.ndarray, used: int) -> tuple[np.ndarray, np.ndarray]:
    room = 2 * ev_i.shape[1]
    gi = np.empty((ev_i.shape[0], room), dtype=np.int64)
    gf = np.empty((ev_f.shape[0], room))  # (rows are few: copying them is cheap)
    gi[:, :used] = ev_i[:, :used]
    gf[:, :used] = ev_f[:, :used]
    return gi, gf


@njit(inline="always", **JIT_OPTIONS)
def open_equity(
    k: int, cash: float, opens: np.ndarray, units: np.ndarray, last: np.ndarray
) -> float:
    """The book's equity at bar k's open before any fill (no session: the last close)."""
    e = cash
    for s in range(len(units)):
        if units[s] != 0.0:
            o = opens[k, s]
            e += units[s] * (o if o == o else last[s])
    return e


@njit(**JIT_OPTIONS)
def fill_bar(
    k: int,
    e: float,
    cash: float,
    m: int,
    opens: np.ndarray,
    units: np.ndarray,
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
) -> tuple[float, int]:
    """Fill bar k's pending orders against pre-fill equity ``e``; returns cash and events.

    (A function of its own: growing the event arrays inside the bar loop's body would cost
    the whole loop its speed.)
    """
    row = k if impact.shape[0] > 1 else 0  # flat costs: one row of terms for every bar
    for s in range(len(units)):
        o = opens[k, s]
        if pending[s] and o == o:
            u0 = units[s]
            u1, cash, price, fee, traded, pending[s] = fill_order(
                u0, cash, tgt[s], o, e, commission[s], up[s], down[s], impact[row, s],
                cap[row, s],
            )  # fmt: skip
            if traded:
                before = sleeve[s] + u0 * o
                _, sleeve[s], _, _, _, _ = fill_order(
                    u0, sleeve[s], tgt[s], o, e, commission[s], up[s], down[s],
                    impact[row, s], cap[row, s],
                )  # fmt: skip
                ev_i[EV_BAR, m] = k
                ev_i[EV_SYMBOL, m] = s
                ev_f[EV_OLD, m] = u0
                ev_f[EV_NEW, m] = u1
                ev_f[EV_PRICE, m] = price
                ev_f[EV_FEE, m] = fee
                ev_f[EV_OPEN, m] = o
                ev_f[EV_EQUITY, m] = e
                ev_f[EV_CASH, m] = cash
                ev_f[EV_SLEEVE, m] = before
                m += 1
                units[s] = u1
    return cash, m


@njit(inline="always", **JIT_OPTIONS)
def mark_close(
    k: int,
    cash: float,
    closes: np.ndarray,
    units: np.ndarray,
    last: np.ndarray,
    started: np.ndarray,
    bench_units: np.ndarray,
    share: float,
) -> tuple[float, float]:
    """Mark the book and the equal-weight benchmark at bar k's close; updates ``last``.

    Returns:
        ``(equity, benchmark equity)`` at the close.
    """
    eq = cash
    bench = 0.0
    for s in range(len(units)):
        c = closes[k, s]
        if c == c:
            last[s] = c
            if not started[s]:
                started[s] = True
                bench_units[s] = share / c
        eq += units[s] * last[s]
        bench += bench_units[s] * last[s] if started[s] else share
    return eq, bench


@njit(inline="always", **JIT_OPTIONS)
def decide_orders(
    mode: int,
    scheduled: bool,
    band: float,
    row: np.ndarray,
    eq: float,
    units: np.ndarray,
    last: np.ndarray,
    in_force: np.ndarray,
    tgt: np.ndarray,
    pending: np.ndarray,
) -> None:
    """Turn a close's target weights ``row`` into orders for the next opens (rebalance rule)."""
    width = len(row)
    if mode == ON_CHANGE:
        for s in range(width):
            if row[s] != in_force[s]:
                in_force[s] = row[s]
                tgt[s] = row[s]
                pending[s] = True
        return
    go = mode == SCHEDULE and scheduled
    if mode == DRIFT:
        for s in range(width):
            if abs(units[s] * last[s] / eq - row[s]) > band:
                go = True
                break
    if go:
        tgt[:] = row
        pending[:] = True


@njit(**JIT_OPTIONS)
def book_loop(
    opens: np.ndarray,
    closes: np.ndarray,
    targets: np.ndarray,
    mode: int,
    decide: np.ndarray,
    band: float,
    commission: np.ndarray,
    slippage: np.ndarray,
    impact: np.ndarray,
    cap: np.ndarray,
    initial_equity: float,
    units_out: np.ndarray,
    cash_out: np.ndarray,
    equity_out: np.ndarray,
    bench_out: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int, bool, np.ndarray, np.ndarray, np.ndarray]:
    """Run the book over the union of sessions.

    Args:
        opens: ``(n_bars, n_symbols)`` opens, NaN where a symbol has no session.
        closes: ``(n_bars, n_symbols)`` closes, NaN where a symbol has no session.
        targets: ``(n_bars, n_symbols)`` target weights decided at each close (clean, capped).
        mode: :data:`ON_CHANGE`, :data:`SCHEDULE` or :data:`DRIFT`.
        decide: Per bar, whether it is a scheduled rebalance bar (``SCHEDULE`` only).
        band: Drift band (``DRIFT`` only).
        commission: Commission rate per symbol.
        slippage: Base slippage fraction per symbol.
        impact: ``(n_bars, n_symbols)`` impact term of a fill at each bar (0: flat costs), or
            one row for every bar.
        cap: ``(n_bars, n_symbols)`` most units a fill at each bar may trade (inf: no cap), or
            one row for every bar.
        initial_equity: Starting cash.
        units_out: ``(n_bars, n_symbols)`` output: units held at each close.
        cash_out: Output: cash at each close.
        equity_out: Output: equity at each close (0 from the ruin bar on).
        bench_out: Output: equity of the equal-weight buy-and-hold benchmark at each close.

    Returns:
        Integer events ``(2, m)`` (bar, symbol), float events ``(8, m)`` (units before and
        after, fill price, commission, open, pre-fill equity, cash after, the symbol's sleeve
        value before the fill), the ruin bar (-1 if none), whether ruin came at an open, and
        per symbol the units held, their marks and the sleeve's cash at the end (the last
        bar, or the moment of ruin).
    """
    n, width = opens.shape
    units = np.zeros(width)
    last = np.zeros(width)  # last close (0 before a symbol's first session: no units then)
    tgt = np.zeros(width)
    in_force = np.zeros(width)
    pending = np.zeros(width, dtype=np.bool_)
    up = 1.0 + slippage
    down = 1.0 - slippage
    share = initial_equity / width
    bench_units = np.zeros(width)
    started = np.zeros(width, dtype=np.bool_)
    end_units = np.zeros(width)
    end_marks = np.zeros(width)
    sleeve = np.full(width, initial_equity)
    ev_i = np.empty((2, max(64, 4 * width)), dtype=np.int64)
    ev_f = np.empty((8, ev_i.shape[1]))
    m = 0
    cash = initial_equity
    ruin_bar = -1
    at_open = False
    for k in range(n):
        if ruin_bar < 0 and k > 0:
            e = open_equity(k, cash, opens, units, last)  # pre-fill equity at the open
            if e <= 0.0:  # ruined at the open: no fill
                ruin_bar, at_open = k, True
                for s in range(width):
                    o = opens[k, s]
                    end_units[s] = units[s]
                    end_marks[s] = o if o == o else last[s]
            else:
                if m + width > ev_i.shape[1]:  # room for a fill of every symbol
                    ev_i, ev_f = _grow(ev_i, ev_f, m)
                cash, m = fill_bar(k, e, cash, m, opens, units, tgt, pending, sleeve,
                                   commission, up, down, impact, cap, ev_i, ev_f)  # fmt: skip
        eq, bench = mark_close(k, cash, closes, units, last, started, bench_units, share)
        bench_out[k] = bench
        if ruin_bar < 0 and eq <= 0.0:  # ruined at the close
            ruin_bar, at_open = k, False
            end_units[:] = units
            end_marks[:] = last
        if ruin_bar >= 0:
            units_out[k] = 0.0
            cash_out[k] = 0.0
            equity_out[k] = 0.0
            continue
        units_out[k] = units
        cash_out[k] = cash
        equity_out[k] = eq
        if k == n - 1:
            break
        decide_orders(mode, decide[k], band, targets[k], eq, units, last, in_force, tgt, pending)
    if ruin_bar < 0:
        end_units[:] = units
        end_marks[:] = last
    ev_i, ev_f = ev_i[:, :m].copy(), ev_f[:, :m].copy()
    return ev_i, ev_f, ruin_bar, at_open, end_units, end_marks, sleeve
