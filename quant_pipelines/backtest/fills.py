"""The cost and fill model shared by :func:`run_backtest` and the Gymnasium ``TradingSimulator``.

The accounting, for one instrument (every consumer books trades the same way, so the same
actions give the same equity in the backtester, the sweep and the simulator):

* Equity is ``cash + units * price``. Units are held between trades: while the target exposure
  stays the same there is no trade and no cost.
* At bar *k*'s open the book trades to the target decided at bar *k-1*'s close, if it differs
  from the target in force. The equity at that open is ``E = cash + units * open_k``; the new
  units are ``target * E / fill_price``; the fill price is ``open_k * (1 + slippage)`` when
  buying and ``open_k * (1 - slippage)`` when selling; the commission is
  ``rate * |Δunits| * fill_price``, taken from cash.
* Equity is marked at every close. If equity at an open or a close is zero or below, the book is
  ruined: it goes flat (units 0, cash 0, equity 0) and stays flat.

:func:`fill_order` is the one implementation of the fill arithmetic, for every cost model
(:mod:`quant_pipelines.backtest.costs`: flat costs are zero impact and no participation cap,
volume-share costs add the square-root impact and the cap, an order the cap cuts carrying to
the next open). It is compiled with numba so that the engine's loops (``_core``), the sweep's
kernel (``_sweep_kernel``), the portfolio engine (``portfolio._kernel``) and the simulator call
it from their compiled loops; :func:`fill_at_open` is its flat-cost form; :func:`rebalance` is
its Python face and :class:`Book` applies it bar by bar with the in-force-target, pending-order
and ruin rules. The tests pin the consumers together: a simulator stepping a :class:`Book`
reproduces ``run_backtest``'s equity bit for bit.

:func:`fill_order` and :func:`fill_at_open` are inlined into their compiled callers
(``inline="always"``: a plain call cost the sweep about 10%). numba's on-disk cache is keyed on
each caller's own source file, so after editing them, delete the cached machine code
(``find quant_pipelines -name '*.nb[ic]' -delete``) or the kernels keep the old arithmetic; the
simulator parity test, which runs the Python form against ``run_backtest``, fails if they do.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from numba import njit

from quant_pipelines.backtest._jit import JIT_OPTIONS
from quant_pipelines.backtest.costs import CostModel, Costs, FlatCosts, VolumeShareCosts

__all__ = [
    "JIT_OPTIONS",
    "Book",
    "CostModel",
    "Costs",
    "Fill",
    "FlatCosts",
    "VolumeShareCosts",
    "fill_at_open",
    "fill_order",
    "rebalance",
]


class Fill(NamedTuple):
    """The outcome of :func:`rebalance` at one open.

    Attributes:
        units: Units held after the fill.
        cash: Cash after the fill (commission deducted).
        price: Fill price (the open itself when nothing traded).
        commission: Commission paid.
        equity: Equity at the open *before* the fill, ``cash + units * open``.
    """

    units: float
    cash: float
    price: float
    commission: float
    equity: float


@njit(inline="always", **JIT_OPTIONS)
def fill_order(
    units: float,
    cash: float,
    target: float,
    open_price: float,
    equity: float,
    commission: float,
    up: float,
    down: float,
    impact: float,
    cap: float,
) -> tuple[float, float, float, float, bool, bool]:
    """The fill arithmetic of every cost model: trade ``units`` towards ``target`` at an open.

    The order's size is set at the base prices: the buy price ``open * up`` is tried first; if
    it does not give more units than held, the sell price ``open * down``; if that does not give
    fewer units either, nothing trades and the order is done. Then at most ``cap`` units fill
    (the rest of the order is left for the next open), and the traded ``q`` units move the
    price by ``open * impact * sqrt(q)`` against the trader (:mod:`~quant_pipelines.backtest.costs`;
    a sale never fetches a negative price). With ``impact = 0`` and ``cap = inf`` (flat costs)
    this is exactly the flat fill: the extra branches are not taken.

    Args:
        units: Units held before the open.
        cash: Cash before the open.
        target: Target exposure (already clipped).
        open_price: The bar's open.
        equity: Pre-fill equity, ``cash + units * open_price`` for one instrument (a portfolio
            passes its whole pre-fill equity).
        commission: Commission rate.
        up: ``1 + slippage``.
        down: ``1 - slippage``.
        impact: Impact per square-root unit (``CostTerms.impact``; 0 for flat costs).
        cap: Most units this fill may trade (``CostTerms.cap``; ``inf`` for flat costs).

    Returns:
        New units, new cash, fill price (the open when nothing traded), commission, whether
        anything traded, and whether part of the order is left (the cap bound).
    """
    price = open_price * up
    new_units = target * equity / price
    buying = new_units > units
    if not buying:
        price = open_price * down
        new_units = target * equity / price
        if not new_units < units:  # inside the slippage band, or no change at all: no trade
            return units, cash, open_price, 0.0, False, False
    traded = new_units - units
    partial = False
    if abs(traded) > cap:
        partial = True
        if not cap > 0.0:  # no volume to trade against: the order waits
            return units, cash, open_price, 0.0, False, True
        traded = cap if buying else -cap
        new_units = units + traded
    if impact > 0.0:
        x = impact * math.sqrt(abs(traded))
        price = open_price * (up + x) if buying else open_price * max(down - x, 0.0)
    fee = commission * abs(traded) * price
    return new_units, cash - traded * price - fee, price, fee, True, partial


@njit(inline="always", **JIT_OPTIONS)
def fill_at_open(
    units: float,
    cash: float,
    target: float,
    open_price: float,
    equity: float,
    commission: float,
    up: float,
    down: float,
) -> tuple[float, float, float, float, bool]:
    """:func:`fill_order` with flat costs (no impact, no cap), compiled.

    Returns:
        New units, new cash, fill price (the open when nothing traded), commission, and
        whether anything traded.
    """
    u, c, p, fee, traded, _ = fill_order(
        units, cash, target, open_price, equity, commission, up, down, 0.0, math.inf
    )
    return u, c, p, fee, traded


# Python callers fill one bar at a time: they run the same function's interpreted form, which
# costs a third of a call through numba's dispatcher and gives the same IEEE results.
_fill_order_py = fill_order.py_func


def _fill(
    units: float,
    cash: float,
    target: float,
    open_price: float,
    costs: CostModel,
    impact: float = 0.0,
    cap: float = math.inf,
) -> tuple[Fill, bool]:
    equity = cash + units * open_price
    slip = costs.slippage
    new_units, new_cash, price, fee, _, partial = _fill_order_py(
        units, cash, target, open_price, equity, costs.commission, 1.0 + slip, 1.0 - slip,
        impact, cap,
    )  # fmt: skip
    return Fill(new_units, new_cash, price, fee, equity), partial


def rebalance(
    units: float,
    cash: float,
    target: float,
    open_price: float,
    costs: CostModel | None = None,
    *,
    impact: float = 0.0,
    cap: float = math.inf,
) -> Fill:
    """Trade a book to a target exposure at an open price.

    The buy price ``open * (1 + s)`` is tried first; if it does not give more units than held,
    the sell price ``open * (1 - s)``; if that does not give fewer units either (a target inside
    the slippage band of the current holding, or the same holding), nothing trades.

    Args:
        units: Units held before the open (negative when short).
        cash: Cash before the open.
        target: Target exposure, a fraction of equity (-1 = fully short, 2 = 2x long).
        open_price: The bar's open price (> 0).
        costs: Commission and slippage; ``Costs()`` when None.
        impact: This bar's impact term (``CostTerms.impact`` of the decision bar).
        cap: This bar's participation cap in units (``CostTerms.cap`` of the decision bar).

    Returns:
        The :class:`Fill`: new units, new cash, fill price, commission and pre-fill equity.
    """
    c = costs if costs is not None else Costs()
    fill, _ = _fill(float(units), float(cash), float(target), float(open_price), c, impact, cap)
    return fill


class Book:
    """A one-instrument book stepped bar by bar with the engine's exact rules.

    ``step(target, open, close)`` applies the target decided at the *previous* close at this
    bar's open and marks the book at this bar's close. For bar 0 pass ``target=0.0``: the first
    target a strategy (or policy) decides is at bar 0's close and fills at bar 1's open.

    With :class:`~quant_pipelines.backtest.costs.VolumeShareCosts`, pass each fill the terms of
    the decision bar: ``terms = costs.terms(volume, closes)``, then at bar k
    ``step(target, open[k], close[k], impact=terms.impact[k - 1], cap=terms.cap[k - 1])``. An
    order the cap cuts stays pending (``pending``) and keeps trading at the next opens until
    the target is reached or replaced.

    Args:
        initial_equity: Starting cash (> 0).
        costs: A cost model (:class:`FlatCosts` when None).
        max_leverage: Targets are clipped to ``[-max_leverage, max_leverage]``.

    Attributes:
        units: Units held.
        cash: Cash.
        target: The target exposure in force (the last one ordered).
        pending: Whether the order for ``target`` is only partly filled.
        equity: Equity at the last mark.
        ruined: True once equity reached zero or below; the book then stays flat at 0.
    """

    def __init__(
        self,
        *,
        initial_equity: float = 100_000.0,
        costs: CostModel | None = None,
        max_leverage: float = 1.0,
    ) -> None:
        if not (math.isfinite(initial_equity) and initial_equity > 0):
            raise ValueError(f"initial_equity must be a positive number, got {initial_equity!r}")
        if not (math.isfinite(max_leverage) and max_leverage > 0):
            raise ValueError(f"max_leverage must be a positive number, got {max_leverage!r}")
        self.costs = costs if costs is not None else Costs()
        self.max_leverage = float(max_leverage)
        self.units = 0.0
        self.cash = float(initial_equity)
        self.target = 0.0
        self.pending = False
        self.equity = float(initial_equity)
        self.ruined = False

    def clip(self, target: float) -> float:
        """Clip a target to ``[-max_leverage, max_leverage]``, rejecting NaN."""
        t = float(target)
        if math.isnan(t):
            raise ValueError("target exposure is NaN")
        return min(max(t, -self.max_leverage), self.max_leverage)

    def _ruin(self) -> None:
        self.units, self.cash, self.equity, self.target, self.ruined = 0.0, 0.0, 0.0, 0.0, True
        self.pending = False

    def open(
        self, target: float, open_price: float, *, impact: float = 0.0, cap: float = math.inf
    ) -> Fill | None:
        """Apply a target at an open; returns the fill, or None when nothing was ordered.

        ``impact`` and ``cap`` are the decision bar's cost terms (flat costs: leave them).
        """
        if self.ruined:
            return None
        t = self.clip(target)
        if self.cash + self.units * open_price <= 0.0:
            self._ruin()
            return None
        if t == self.target and not self.pending:
            return None
        fill, self.pending = _fill(self.units, self.cash, t, open_price, self.costs, impact, cap)
        self.units, self.cash, self.target = fill.units, fill.cash, t
        return fill

    def mark(self, price: float) -> float:
        """Mark the book at a price (the close); returns the equity."""
        if self.ruined:
            return 0.0
        self.equity = self.cash + self.units * price
        if self.equity <= 0.0:
            self._ruin()
        return self.equity

    def step(
        self,
        target: float,
        open_price: float,
        close_price: float,
        *,
        impact: float = 0.0,
        cap: float = math.inf,
    ) -> float:
        """Fill ``target`` at ``open_price`` (if it changed or is pending), mark at the close.

        Args:
            target: The target exposure decided at the previous bar's close.
            open_price: This bar's open.
            close_price: This bar's close.
            impact: The previous bar's impact term (volume-share costs).
            cap: The previous bar's participation cap in units (volume-share costs).

        Returns:
            Equity at this bar's close.
        """
        self.open(target, open_price, impact=impact, cap=cap)
        return self.mark(close_price)
