"""``run_portfolio_backtest``: many symbols, one cash account, target weights filled at next opens.

The accounting (``docs/portfolio.md``):

* The symbols' bars are laid on the union of their sessions. A symbol without a session on a
  day keeps its units and is marked at its last close; an order for it waits for its next
  session's open.
* Equity is ``cash + Σ units * mark``, the mark being the open (at an open) or the close (at
  a close) for a symbol that trades that day, else its last close.
* Weights decided at bar t's close are orders for each symbol's next open, per the rebalance
  rule (:mod:`~quant_pipelines.backtest.portfolio.rebalance`). At bar k's open every pending
  order of a symbol trading that day fills with the fill arithmetic of every engine
  (``fills.fill_order``: units = ``weight * E / fill price``, where ``E`` is the book's equity
  at that open before any fill, slippage and commission per symbol, and with volume-share costs
  the square-root impact and the participation cap, the rest of the order carrying on).
* If equity at an open (before its fills) or at a close is zero or below, the book is ruined:
  flat at 0 from then on.

With one symbol and ``rebalance="on_change"`` this is :func:`~quant_pipelines.backtest.run_backtest`
(the tests hold them equal to 1e-9).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quant_pipelines.backtest.costs import CostModel, FlatCosts
from quant_pipelines.backtest.metrics import resolve_periods_per_year
from quant_pipelines.backtest.portfolio._inputs import align, cost_models, target_weights
from quant_pipelines.backtest.portfolio._kernel import book_loop
from quant_pipelines.backtest.portfolio._metrics import RawBook, book_metrics, trades_and_ends
from quant_pipelines.backtest.portfolio.rebalance import Rebalance, rebalance_plan
from quant_pipelines.backtest.portfolio.result import PortfolioResult

DEFAULT_COSTS = FlatCosts()


def run_portfolio_backtest(
    bars: Mapping[str, pd.DataFrame],
    weights: pd.DataFrame,
    *,
    costs: CostModel | Mapping[str, CostModel] = DEFAULT_COSTS,
    initial_equity: float = 100_000.0,
    max_gross_leverage: float = 1.0,
    allow_short: bool = True,
    rebalance: Rebalance = "on_change",
    periods_per_year: float | None = None,
    asset_class: str | None = None,
) -> PortfolioResult:
    """Backtest target weights over a universe with one cash account.

    ``weights.loc[t, s]`` is the fraction of equity to hold in ``s`` (negative = short),
    decided at bar t's close and filled at ``s``'s next open (see the module docstring).

    Args:
        bars: Bar frames by symbol (``open``, ``close``; ``volume`` for volume-share costs).
            Symbols not in the weights' columns are ignored.
        weights: Target weights: one column per symbol, on the union of the symbols' sessions.
        costs: One cost model for every symbol, or a mapping ``symbol -> model``
            (:class:`~quant_pipelines.backtest.costs.FlatCosts` or
            :class:`~quant_pipelines.backtest.costs.VolumeShareCosts`).
        initial_equity: Starting cash.
        max_gross_leverage: A row whose ``Σ|w|`` exceeds it is scaled down to it, in proportion
            (the documented clip: no error).
        allow_short: When False, negative weights are taken as 0 (flat).
        rebalance: ``"on_change"`` (a symbol trades when its target changes), ``"daily"``,
            ``"weekly"``, ``"monthly"`` (every symbol trades back to its target on the first
            bar of each period), or ``DriftBand(x)`` (every symbol trades back once some weight
            is more than ``x`` off its target).
        periods_per_year: Annualisation factor; overrides ``asset_class``.
        asset_class: "equity" (252), "crypto" (365), "fx" (260), ...; 252 when both are None.

    Returns:
        The :class:`~quant_pipelines.backtest.portfolio.result.PortfolioResult`.

    Raises:
        TypeError: If bars, weights or costs have the wrong type.
        ValueError: On a symbol without bars, bars missing a column or holding a bad value,
            weights off the union of sessions or NaN (named by date and symbol), or bad
            parameters.
    """
    if not isinstance(weights, pd.DataFrame):
        raise TypeError(f"weights must be a DataFrame, got {type(weights).__name__}")
    if weights.shape[1] == 0 or not weights.columns.is_unique:
        raise ValueError("weights need one column per symbol, each symbol once")
    if not (np.isfinite(initial_equity) and initial_equity > 0):
        raise ValueError(f"initial_equity must be positive, got {initial_equity!r}")
    if not (np.isfinite(max_gross_leverage) and max_gross_leverage > 0):
        raise ValueError(f"max_gross_leverage must be positive, got {max_gross_leverage!r}")
    symbols = tuple(str(s) for s in weights.columns)
    if isinstance(bars, Mapping):  # bars keyed by non-str symbols still match by name
        bars = {str(k): v for k, v in bars.items()}
    models = cost_models(costs, symbols)
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    uni = align(bars, symbols, models)
    targets = target_weights(
        weights, uni.index, max_gross_leverage=float(max_gross_leverage), allow_short=allow_short
    )
    mode, decide, band = rebalance_plan(uni.index, rebalance)
    n, width = targets.shape
    units = np.empty((n, width))
    cash = np.empty(n)
    equity = np.empty(n)
    bench = np.empty(n)
    out = book_loop(
        uni.opens,
        uni.closes,
        targets,
        mode,
        decide,
        band,
        uni.commission,
        uni.slippage,
        uni.impact,
        uni.cap,
        float(initial_equity),
        units,
        cash,
        equity,
        bench,
    )
    raw = RawBook(units, cash, equity, bench, *out)
    trades = trades_and_ends(raw, n, float(initial_equity))
    first, last = _first_last(uni.closes)
    metrics = book_metrics(
        raw,
        trades,
        initial_equity=float(initial_equity),
        periods_per_year=ppy,
        first_close=first,
        last_close=last,
    )
    return PortfolioResult(
        index=uni.index,
        symbols=symbols,
        closes=uni.closes,
        targets=targets,
        raw=raw,
        trades=trades,
        metrics=metrics,
        costs=dict(zip(symbols, models, strict=True)),
        initial_equity=float(initial_equity),
        periods_per_year=ppy,
        max_gross_leverage=float(max_gross_leverage),
        rebalance=rebalance,
    )


def _first_last(closes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each symbol's first and last close."""
    has = ~np.isnan(closes)
    first = has.argmax(axis=0)
    last = len(closes) - 1 - has[::-1].argmax(axis=0)
    cols = np.arange(closes.shape[1])
    return closes[first, cols], closes[last, cols]
