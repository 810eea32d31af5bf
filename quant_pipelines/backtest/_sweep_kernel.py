"""The sweep's compiled kernel: fills, ruin and every metric of many runs, fused.

:func:`sweep_block` evaluates a block of target rows (one per parameter set) in groups of
:data:`LANES` rows, in three steps:

1. **Fills** (per row, scalar, sparse): walk the row's targets and, where the target in force
   changes (or an order the participation cap cut is still pending, with volume-share
   costs), fill with ``fills.fill_order``, the fill arithmetic ``run_backtest`` and the
   simulator call too (so units and cash are bit for bit ``run_backtest``'s). Each fill also
   books turnover, costs and the trade legs of ``_trades`` (entry/exit values, P&L, wins,
   gross profit and loss), and the bars held since the previous trade. The new units and cash
   of every trade are recorded as events.
2. **Equity statistics** (per bar, across the group's rows): events sorted by bar update each
   row's units and cash; then one loop over the rows, which the compiler turns into SIMD code,
   marks equity at the close and accumulates the sums of ``r``, ``r²`` and ``min(r, 0)²``, the
   running peak, the deepest peak-to-trough ratio and the longest stretch below the peak. It
   also flags a row whose equity at an open or a close reaches zero or below.
3. **Finish**: a flagged row (ruin) is re-run by :func:`_run`, the plain bar-by-bar version of
   the same accounting, which applies the ruin rule exactly; the others get their metrics from
   their sums with the formulas of ``_stats._finish_one`` and ``_assemble.collect_metrics``.

Groups of fewer than ``min_vector`` rows (a small sweep, a walk-forward test fold) skip the SIMD
step and run :func:`_run` per row. Both paths do the same operations in the same order for each
row, so they agree bit for bit (a test pins this). Against ``run_backtest``, equity is bit for
bit equal and the metrics agree to rounding: the sums here run in bar order, numpy's
pairwise; the tests hold them to 1e-9.

Compiled with ``cache=True``: the first use on a machine compiles (several seconds) and stores
the machine code in ``__pycache__``; later processes load it (a fraction of a second).
``fastmath`` stays off, so IEEE operations and their order are kept exactly;
``error_model="numpy"`` drops Python's divide-by-zero checks (no division here can raise).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quant_pipelines.backtest._keys import METRIC_KEYS
from quant_pipelines.backtest.fills import JIT_OPTIONS, fill_order

N_METRICS = len(METRIC_KEYS)
"""Output columns, in :data:`~quant_pipelines.backtest._keys.METRIC_KEYS` order."""

LANES = 64
"""Rows per SIMD group (a compile-time constant: the loop over them vectorises cleanly)."""
MIN_VECTOR = 16
"""Groups with fewer rows run the scalar path (an idle lane costs about as much as a busy one)."""

_JIT = JIT_OPTIONS

# Trade-book accumulators (one float64 row per run), see :func:`_trade`.
_N_TRADES, _WINS, _GROSS_WIN, _GROSS_LOSS, _ENTRY, _TURNOVER, _COSTS, _HELD, _N_BOOK = range(9)
# Per-row equity state of the SIMD step.
_UNITS, _CASH, _PREV, _S1, _S2, _D2, _PEAK, _RATIO, _N_STATE = range(9)
_LAST_PEAK, _DURATION, _RUIN, _N_ISTATE = range(4)


@njit(**_JIT)
def _sign(x: float) -> int:
    return (x > 0.0) - (x < 0.0)


@njit(**_JIT)
def _close_trade(book: np.ndarray, value: float) -> None:
    """Book the P&L of the open trade, ended at ``value``."""
    pnl = value - book[_ENTRY]
    if pnl > 0.0:
        book[_WINS] += 1.0
        book[_GROSS_WIN] += pnl
    elif pnl < 0.0:
        book[_GROSS_LOSS] += pnl


@njit(**_JIT)
def _trade(
    units: float,
    cash: float,
    target: float,
    op: float,
    equity: float,
    commission: float,
    up: float,
    down: float,
    impact: float,
    cap: float,
    book: np.ndarray,
) -> tuple[float, float, bool, bool]:
    """``fills.fill_order`` (pre-fill ``equity = cash + units * op``), with bookkeeping.

    Returns the new units and cash, whether anything traded and whether the order is left
    partly unfilled (the participation cap bound). A trade adds its turnover
    (``|Δunits| × fill / equity``) and costs (commission + ``|Δunits| × |fill − open|``) to
    ``book``, and opens and/or closes trades where the holding's sign changes: the closing leg
    carries the fill's costs in proportion ``|old units| / |Δunits|`` (all of them when going
    flat), and a trade's value at entry and exit is the pre-fill equity less the closing leg's
    costs (``_trades.extract_trades``).
    """
    new_units, new_cash, price, fee, traded, partial = fill_order(
        units, cash, target, op, equity, commission, up, down, impact, cap
    )
    if not traded:
        return units, cash, False, partial
    du = abs(new_units - units)
    book[_TURNOVER] += du * price / equity
    cost = fee + du * abs(price - op)
    book[_COSTS] += cost
    s_old = _sign(units)
    s_new = _sign(new_units)
    if s_new != s_old:
        base = equity
        if s_old != 0:
            share = abs(units) / du if s_new != 0 else 1.0
            base = equity - cost * share
            _close_trade(book, base)
        if s_new != 0:
            book[_N_TRADES] += 1.0
            book[_ENTRY] = base
    return new_units, new_cash, True, partial


@njit(**_JIT)
def _metrics(
    out: np.ndarray,
    closes: np.ndarray,
    initial_equity: float,
    ppy: float,
    final: float,
    s1: float,
    s2: float,
    d2: float,
    min_ratio: float,
    duration: int,
    held: float,
    book: np.ndarray,
) -> None:
    """Write a run's metrics (``METRIC_KEYS`` order) from its sums (``_stats._finish_one``)."""
    n = len(closes)
    m = n - 1
    mdd = min_ratio - 1.0
    if m < 1:
        cagr = vol = sharpe = sortino = calmar = 0.0
    else:
        mean = s1 / m
        var = max((s2 - s1 * mean) / (m - 1), 0.0) if m > 1 else 0.0
        std = math.sqrt(var)
        down = math.sqrt(d2 / m)
        ann = math.sqrt(ppy)
        vol = std * ann
        sharpe = mean / std * ann if std > 0 else 0.0
        sortino = mean / down * ann if down > 0 else (math.inf if mean > 0 else 0.0)
        cagr = (final / initial_equity) ** (ppy / m) - 1.0 if final > 0 else -1.0
        calmar = cagr / -mdd if mdd < 0 else (math.inf if cagr > 0 else 0.0)
    n_trades = book[_N_TRADES]
    gross_win = book[_GROSS_WIN]
    loss = -book[_GROSS_LOSS]
    profit_factor = gross_win / loss if loss > 0 else (math.inf if gross_win > 0 else 0.0)
    years = m / ppy
    out[0] = final / initial_equity - 1.0
    out[1] = cagr
    out[2] = vol
    out[3] = sharpe
    out[4] = sortino
    out[5] = calmar
    out[6] = mdd
    out[7] = duration
    out[8] = n_trades
    out[9] = book[_WINS] / n_trades if n_trades > 0 else 0.0
    out[10] = profit_factor
    out[11] = held / n
    out[12] = book[_TURNOVER] / years if years > 0 else 0.0
    out[13] = closes[n - 1] / closes[0] - 1.0
    out[14] = final
    out[15] = book[_COSTS]


@njit(**_JIT)
def _run(
    opens: np.ndarray,
    closes: np.ndarray,
    row: np.ndarray,
    start: int,
    max_leverage: float,
    commission: float,
    slippage: float,
    impact: np.ndarray,
    cap: np.ndarray,
    initial_equity: float,
    ppy: float,
    out: np.ndarray,
) -> None:
    """One run, bar by bar, with the ruin rule (``row[start + k]`` is decided at bar k's close).

    The scalar twin of the fills + SIMD steps of :func:`sweep_block`, operation for operation.
    """
    n = len(opens)
    up = 1.0 + slippage
    down = 1.0 - slippage
    book = np.zeros(_N_BOOK)
    units = 0.0
    cash = initial_equity
    raw = 0.0  # the last target seen (unclipped): only a change of it can change the one in force
    in_force = 0.0
    pending = False  # an order (for in_force) not yet filled in full
    prev = initial_equity  # equity at bar 0's close (nothing trades at bar 0)
    s1 = 0.0
    s2 = 0.0
    d2 = 0.0
    peak = initial_equity
    min_ratio = 1.0
    last_peak = 0
    duration = 0
    held = 0.0
    ruined = False
    for k in range(1, n):
        op = opens[k]
        equity = cash + units * op  # pre-fill equity at the open
        if equity <= 0.0:  # ruined at the open: no fill
            ruined = True
            break
        x = row[start + k - 1]
        if x != raw:
            raw = x
            target = min(max(x, -max_leverage), max_leverage)
            if target != in_force:
                in_force = target
                pending = True
        if pending:
            units, cash, _, pending = _trade(units, cash, in_force, op, equity, commission, up,
                                             down, impact[k - 1], cap[k - 1], book)  # fmt: skip
        e = cash + units * closes[k]
        if e <= 0.0:  # ruined at the close
            ruined = True
            break
        r = e / prev - 1.0
        s1 += r
        s2 += r * r
        neg = min(r, 0.0)
        d2 += neg * neg
        held += units != 0.0
        at_peak = e >= peak
        peak = e if at_peak else peak
        last_peak = k if at_peak else last_peak
        duration = max(duration, k - last_peak)
        min_ratio = min(min_ratio, e / peak)
        prev = e
    final = prev
    if ruined:
        # Equity is 0 from the ruin bar on: a return of -1 there, then 0 (``safe`` returns); the
        # stretch below the peak lasts to the end, and a trade still open ends at 0.
        final = 0.0
        s1 += -1.0
        s2 += 1.0
        d2 += 1.0
        min_ratio = 0.0
        duration = max(duration, n - 1 - last_peak)
    if units != 0.0:
        _close_trade(book, final)
    _metrics(out, closes, initial_equity, ppy, final, s1, s2, d2, min_ratio, duration, held, book)


@njit(**_JIT)
def _has_nan(row: np.ndarray, lo: int, hi: int) -> bool:
    seg = row[lo:hi]
    bad = 0
    for k in range(len(seg)):
        bad += seg[k] != seg[k]  # branch-free, so that the loop vectorises
    return bad > 0


@njit(**_JIT)
def _next_change(row: np.ndarray, i: int, stop: int, value: float) -> int:
    """First index in ``[i, stop)`` whose value differs from ``value`` (NaN does), else stop.

    Tests 16 values at a time without branching (most rows change rarely), on a view indexed
    from 0 so that the compiler can drop negative-index handling and vectorise the test.
    """
    seg = row[i:stop]
    n = len(seg)
    j = 0
    while j + 16 <= n:
        differ = 0
        for q in range(16):
            differ += seg[j + q] != value
        if differ:
            break
        j += 16
    while j < n and seg[j] == value:
        j += 1
    return i + j


@njit(**_JIT)
def _fills(
    opens: np.ndarray,
    row: np.ndarray,
    start: int,
    max_leverage: float,
    commission: float,
    slippage: float,
    impact: np.ndarray,
    cap: np.ndarray,
    initial_equity: float,
    book: np.ndarray,
    ev_bar: np.ndarray,
    ev_units: np.ndarray,
    ev_cash: np.ndarray,
) -> int:
    """Step 1 for one row (ruin ignored): fills, their bookkeeping, and the trade events.

    Returns the number of events written to ``ev_*`` (bar, units and cash after each trade),
    or -1 if the row holds a NaN target.
    """
    n = len(opens)
    up = 1.0 + slippage
    down = 1.0 - slippage
    units = 0.0
    cash = initial_equity
    raw = 0.0
    in_force = 0.0
    pending = False
    m = 0
    since = 0  # bar from which the current units are held
    stop = start + n - 1  # the last target is never filled
    i = _next_change(row, start, stop, raw)
    while i < stop:
        x = row[i]
        if x != x:
            return -1
        raw = x
        target = min(max(x, -max_leverage), max_leverage)
        if target != in_force:
            in_force = target
            pending = True
        if pending:
            k = i - start + 1  # decided at bar k - 1's close, filled at bar k's open
            op = opens[k]
            before = units
            units, cash, traded, pending = _trade(units, cash, in_force, op, cash + units * op,
                                                  commission, up, down, impact[k - 1],
                                                  cap[k - 1], book)  # fmt: skip
            if traded:
                if before != 0.0:  # bars held (at their close) since the last trade
                    book[_HELD] += k - since
                since = k
                ev_bar[m] = k
                ev_units[m] = units
                ev_cash[m] = cash
                m += 1
        # a pending order trades again at the next open; otherwise skip to the next change
        i = i + 1 if pending else _next_change(row, i + 1, stop, raw)
    if units != 0.0:
        book[_HELD] += n - since
    last = row[start + n - 1]
    if last != last:
        return -1
    return m


@njit(**_JIT)
def _group(
    opens: np.ndarray,
    closes: np.ndarray,
    targets: np.ndarray,
    start: int,
    max_leverage: float,
    commission: float,
    slippage: float,
    impact: np.ndarray,
    cap: np.ndarray,
    initial_equity: float,
    ppy: float,
    out: np.ndarray,
) -> int:
    """Steps 1-3 for up to :data:`LANES` rows; returns -1 or the first row with a NaN target."""
    n = len(opens)
    rows = targets.shape[0]
    # Step 1: fills per row; events gathered row by row, then sorted by bar (counting sort).
    books = np.zeros((LANES, _N_BOOK))
    row_bar = np.empty(n, dtype=np.int64)
    row_units = np.empty(n)
    row_cash = np.empty(n)
    room = 64 * LANES
    ev_bar = np.empty(room, dtype=np.int64)
    ev_lane = np.empty(room, dtype=np.int64)
    ev_units = np.empty(room)
    ev_cash = np.empty(room)
    m = 0
    for j in range(rows):
        got = _fills(opens, targets[j], start, max_leverage, commission, slippage, impact, cap,
                     initial_equity, books[j], row_bar, row_units, row_cash)  # fmt: skip
        if got < 0:
            return j
        if m + got > room:
            room = max(2 * room, m + got)
            ev_bar = _grow_int(ev_bar, room, m)
            ev_lane = _grow_int(ev_lane, room, m)
            ev_units = _grow(ev_units, room, m)
            ev_cash = _grow(ev_cash, room, m)
        for q in range(got):
            ev_bar[m + q] = row_bar[q]
            ev_lane[m + q] = j
            ev_units[m + q] = row_units[q]
            ev_cash[m + q] = row_cash[q]
        m += got
    # (Inline, not a helper: arrays returned from a call cost the SIMD loop its vectorisation.)
    ptr = np.zeros(n + 1, dtype=np.int64)
    for q in range(m):
        ptr[ev_bar[q] + 1] += 1
    for k in range(n):
        ptr[k + 1] += ptr[k]
    fill = ptr[:-1].copy()
    by_lane = np.empty(m, dtype=np.int64)
    by_units = np.empty(m)
    by_cash = np.empty(m)
    for q in range(m):
        at = fill[ev_bar[q]]
        fill[ev_bar[q]] += 1
        by_lane[at] = ev_lane[q]
        by_units[at] = ev_units[q]
        by_cash[at] = ev_cash[q]

    # Step 2: equity statistics, all lanes per bar (idle lanes stay flat).
    st = np.zeros((_N_STATE, LANES))
    ist = np.zeros((_N_ISTATE, LANES), dtype=np.int64)
    st[_CASH] = initial_equity
    st[_PREV] = initial_equity
    st[_PEAK] = initial_equity
    st[_RATIO] = 1.0
    units, cash, prev = st[_UNITS], st[_CASH], st[_PREV]
    s1, s2, d2, peak, ratio = st[_S1], st[_S2], st[_D2], st[_PEAK], st[_RATIO]
    last_peak, duration, ruin = ist[_LAST_PEAK], ist[_DURATION], ist[_RUIN]
    for k in range(1, n):
        for q in range(ptr[k], ptr[k + 1]):
            j = by_lane[q]
            units[j] = by_units[q]
            cash[j] = by_cash[q]
        ck = closes[k]
        next_open = opens[k + 1] if k + 1 < n else ck  # (no open after the last bar)
        for j in range(LANES):
            e = cash[j] + units[j] * ck
            r = e / prev[j] - 1.0
            s1[j] += r
            s2[j] += r * r
            neg = min(r, 0.0)
            d2[j] += neg * neg
            at_peak = e >= peak[j]
            pk = e if at_peak else peak[j]
            peak[j] = pk
            lp = k if at_peak else last_peak[j]
            last_peak[j] = lp
            duration[j] = max(duration[j], k - lp)
            ratio[j] = min(ratio[j], e / pk)
            prev[j] = e
            # ruin at this close, or at the next open (before its fill)
            ruin[j] |= (e <= 0.0) | (cash[j] + units[j] * next_open <= 0.0)

    # Step 3: finish; ruined rows are re-run exactly.
    for j in range(rows):
        if ruin[j]:
            _run(opens, closes, targets[j], start, max_leverage, commission, slippage, impact,
                 cap, initial_equity, ppy, out[j])  # fmt: skip
            continue
        if units[j] != 0.0:
            _close_trade(books[j], prev[j])
        _metrics(out[j], closes, initial_equity, ppy, prev[j], s1[j], s2[j], d2[j], ratio[j],
                 duration[j], books[j][_HELD], books[j])  # fmt: skip
    return -1


@njit(**_JIT)
def _grow(a: np.ndarray, cap: int, used: int) -> np.ndarray:
    b = np.empty(cap)
    b[:used] = a[:used]
    return b


@njit(**_JIT)
def _grow_int(a: np.ndarray, cap: int, used: int) -> np.ndarray:
    b = np.empty(cap, dtype=np.int64)
    b[:used] = a[:used]
    return b


@njit(**_JIT)
def sweep_block(
    opens: np.ndarray,
    closes: np.ndarray,
    targets: np.ndarray,
    start: int,
    max_leverage: float,
    commission: float,
    slippage: float,
    initial_equity: float,
    ppy: float,
    out: np.ndarray,
    min_vector: int = MIN_VECTOR,
) -> int:
    """:func:`sweep_block_costs` with flat costs (no impact, no participation cap)."""
    n = len(opens)
    return sweep_block_costs(opens, closes, targets, start, max_leverage, commission, slippage,
                             np.zeros(n), np.full(n, np.inf), initial_equity, ppy, out,
                             min_vector)  # fmt: skip


@njit(**_JIT)
def sweep_block_costs(
    opens: np.ndarray,
    closes: np.ndarray,
    targets: np.ndarray,
    start: int,
    max_leverage: float,
    commission: float,
    slippage: float,
    impact: np.ndarray,
    cap: np.ndarray,
    initial_equity: float,
    ppy: float,
    out: np.ndarray,
    min_vector: int = MIN_VECTOR,
) -> int:
    """Backtest every row of ``targets`` and write its metrics (``METRIC_KEYS`` order) to ``out``.

    Args:
        opens: Open prices of the evaluated bars (``n`` of them, all > 0, C-contiguous).
        closes: Close prices of the evaluated bars.
        targets: ``(n_rows, start + n)`` target exposures (C-contiguous);
            ``targets[i, start + k]`` is decided at evaluated bar k's close (the first
            ``start`` columns are indicator history, not evaluated).
        start: Column of the first evaluated bar.
        max_leverage: Targets are clipped to ``[-max_leverage, max_leverage]``.
        commission: Commission rate.
        slippage: Slippage as a fraction of the open.
        impact: Impact term per evaluated bar (``costs.CostTerms``; zeros for flat costs).
        cap: Participation cap in units per evaluated bar (``inf`` for flat costs).
        initial_equity: Starting cash.
        ppy: Periods per year.
        out: ``(n_rows, N_METRICS)`` output.
        min_vector: Groups of fewer rows take the scalar path (tests force either path).

    Returns:
        -1, or the first row holding a NaN target (rows from its group on are not computed).
    """
    n = len(opens)
    total = targets.shape[0]
    for lo in range(0, total, LANES):
        hi = min(lo + LANES, total)
        if hi - lo >= min_vector:
            bad = _group(opens, closes, targets[lo:hi], start, max_leverage, commission,
                         slippage, impact, cap, initial_equity, ppy, out[lo:hi])  # fmt: skip
            if bad >= 0:
                return lo + bad
            continue
        for i in range(lo, hi):
            if _has_nan(targets[i], start, start + n):
                return i
            _run(opens, closes, targets[i], start, max_leverage, commission, slippage, impact,
                 cap, initial_equity, ppy, out[i])  # fmt: skip
    return -1
