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

:func:`fill_at_open` is the one implementation of the fill arithmetic, compiled with numba so
that the engine's change-point loop (``_core.fill_loop``) and the sweep's kernel
(``_sweep_kernel``) call it from their compiled loops; :func:`rebalance` is its Python face and
:class:`Book` applies it bar by bar with the in-force-target and ruin rules. The tests pin the
consumers together: a simulator stepping a :class:`Book` reproduces ``run_backtest``'s equity
bit for bit.

:func:`fill_at_open` is inlined into its compiled callers (``inline="always"``: a plain call
cost the sweep about 10%). numba's on-disk cache is keyed on each caller's own source file, so
after editing :func:`fill_at_open`, delete the cached machine code
(``find quant_pipelines -name '*.nb[ic]' -delete``) or the kernels keep the old arithmetic; the
simulator parity test, which runs the Python form against ``run_backtest``, fails if they do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from numba import njit

#: Compile options shared by the backtest's numba code: machine code cached in
#: ``__pycache__``; ``fastmath`` off, so IEEE operations and their order are kept exactly;
#: ``error_model="numpy"`` drops Python's divide-by-zero checks (no division here can raise).
JIT_OPTIONS: dict[str, bool | str] = {"cache": True, "nogil": True, "error_model": "numpy"}


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
    """The fill arithmetic: trade ``units`` to ``target`` at an open (compiled).

    The buy price ``open * up`` is tried first; if it does not give more units than held, the
    sell price ``open * down``; if that does not give fewer units either, nothing trades.

    Args:
        units: Units held before the open.
        cash: Cash before the open.
        target: Target exposure (already clipped).
        open_price: The bar's open.
        equity: Pre-fill equity, ``cash + units * open_price`` (callers have it at hand).
        commission: Commission rate.
        up: ``1 + slippage``.
        down: ``1 - slippage``.

    Returns:
        New units, new cash, fill price (the open when nothing traded), commission, and
        whether anything traded.
    """
    price = open_price * up
    new_units = target * equity / price
    if not new_units > units:
        price = open_price * down
        new_units = target * equity / price
        if not new_units < units:  # inside the slippage band, or no change at all: no trade
            return units, cash, open_price, 0.0, False
    traded = new_units - units
    fee = commission * abs(traded) * price
    return new_units, cash - traded * price - fee, price, fee, True


# Python callers fill one bar at a time: they run the same function's interpreted form, which
# costs a third of a call through numba's dispatcher and gives the same IEEE results.
_fill_at_open_py = fill_at_open.py_func


def _fill(
    units: float, cash: float, target: float, open_price: float, rate: float, slip: float
) -> Fill:
    equity = cash + units * open_price
    new_units, new_cash, price, fee, _ = _fill_at_open_py(
        units, cash, target, open_price, equity, rate, 1.0 + slip, 1.0 - slip
    )
    return Fill(new_units, new_cash, price, fee, equity)


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
