"""The cost and fill model shared by :func:`run_backtest` and the Gymnasium ``TradingSimulator``.

The accounting (issue 3), for one instrument:

* Equity is ``cash + units * price``. Units are held between trades: while the target exposure
  stays the same there is no trade and no cost.
* At bar *k*'s open the book trades to the target decided at bar *k-1*'s close, if it differs
  from the target in force. The equity at that open is ``E = cash + units * open_k``; the new
  units are ``target * E / fill_price``; the fill price is ``open_k * (1 + slippage)`` when
  buying and ``open_k * (1 - slippage)`` when selling; the commission is
  ``rate * |Δunits| * fill_price``, taken from cash.
* Equity is marked at every close. If equity at an open or a close is zero or below, the book is
  ruined: it goes flat (units 0, cash 0, equity 0) and stays flat.

:func:`rebalance` is the fill function; :class:`Book` applies it bar by bar with the
in-force-target and ruin rules. The engine's change-point loop and the sweep's numba kernel are
operation-for-operation copies of ``_fill`` (inlined for speed), and the tests pin them
together: a simulator stepping a :class:`Book` reproduces ``run_backtest``'s equity bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class Costs:
    """Trading costs.

    Attributes:
        commission: Commission as a fraction of traded notional (0.001 = 10 bps).
        slippage_bps: Slippage in basis points of the open price, always against the trader.
    """

    commission: float = 0.001
    slippage_bps: float = 2.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.commission) and 0.0 <= self.commission < 1.0):
            raise ValueError(f"commission must be in [0, 1), got {self.commission!r}")
        if not (math.isfinite(self.slippage_bps) and 0.0 <= self.slippage_bps < 10_000.0):
            raise ValueError(f"slippage_bps must be in [0, 10000), got {self.slippage_bps!r}")

    @property
    def slippage(self) -> float:
        """Slippage as a fraction of the price (``slippage_bps / 10_000``)."""
        return self.slippage_bps * 1e-4


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


def _fill(
    units: float, cash: float, target: float, open_price: float, rate: float, slip: float
) -> Fill:
    # The single implementation of the fill; the vectorised sweep mirrors these exact operations.
    equity = cash + units * open_price
    price = open_price * (1.0 + slip)
    new_units = target * equity / price
    if not new_units > units:
        price = open_price * (1.0 - slip)
        new_units = target * equity / price
        if not new_units < units:  # inside the slippage band, or no change at all: no trade
            return Fill(units, cash, open_price, 0.0, equity)
    traded = new_units - units
    commission = rate * abs(traded) * price
    return Fill(new_units, cash - traded * price - commission, price, commission, equity)


def rebalance(
    units: float, cash: float, target: float, open_price: float, costs: Costs | None = None
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

    Returns:
        The :class:`Fill`: new units, new cash, fill price, commission and pre-fill equity.
    """
    c = costs if costs is not None else Costs()
    return _fill(
        float(units), float(cash), float(target), float(open_price), c.commission, c.slippage
    )


class Book:
    """A one-instrument book stepped bar by bar with the engine's exact rules.

    ``step(target, open, close)`` applies the target decided at the *previous* close at this
    bar's open and marks the book at this bar's close. For bar 0 pass ``target=0.0``: the first
    target a strategy (or policy) decides is at bar 0's close and fills at bar 1's open.

    Args:
        initial_equity: Starting cash (> 0).
        costs: Commission and slippage.
        max_leverage: Targets are clipped to ``[-max_leverage, max_leverage]``.

    Attributes:
        units: Units held.
        cash: Cash.
        target: The target exposure in force (the last one traded to).
        equity: Equity at the last mark.
        ruined: True once equity reached zero or below; the book then stays flat at 0.
    """

    def __init__(
        self,
        *,
        initial_equity: float = 100_000.0,
        costs: Costs | None = None,
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

    def open(self, target: float, open_price: float) -> Fill | None:
        """Apply a target at an open; returns the fill, or None when nothing was traded."""
        if self.ruined:
            return None
        t = self.clip(target)
        if self.cash + self.units * open_price <= 0.0:
            self._ruin()
            return None
        if t == self.target:
            return None
        fill = _fill(
            self.units, self.cash, t, open_price, self.costs.commission, self.costs.slippage
        )
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

    def step(self, target: float, open_price: float, close_price: float) -> float:
        """Fill ``target`` at ``open_price`` (if it changed), then mark at ``close_price``.

        Args:
            target: The target exposure decided at the previous bar's close.
            open_price: This bar's open.
            close_price: This bar's close.

        Returns:
            Equity at this bar's close.
        """
        self.open(target, open_price)
        return self.mark(close_price)
