"""The portfolio's metrics: today's ``METRIC_KEYS``, holdings, benchmark and contributions.

Definitions (``E`` = equity at each close, ``E_0`` = initial equity, ``V_s`` = symbol s's
P&L to date, cash flows of its fills plus ``units * mark``):

* ``METRIC_KEYS`` as for one instrument (:mod:`quant_pipelines.backtest.metrics`): equity
  metrics of ``E``; round trips of each symbol (``_trades``, valued on the symbol's sleeve, so
  that the trades of all symbols add up to the equity change); ``exposure`` = share of bars
  holding anything; ``turnover`` = yearly sum of ``|Δunits| * fill / pre-fill equity``;
  ``buy_and_hold_return`` = total return of the equal-weight buy-and-hold benchmark;
  ``total_costs`` = commissions plus ``|Δunits| * |fill - open|``.
* ``avg_holdings``: mean number of symbols held at a close.
* ``benchmark_*``: CAGR, Sharpe and max drawdown of the benchmark, which puts ``E_0 / N`` into
  each of the N symbols at its first close, without costs, and holds.
* Per symbol (:func:`contributions`): ``pnl`` (``V_s`` at the end), ``return_contribution`` =
  ``pnl / E_0`` (they add up to ``total_return``) and ``risk_contribution`` =
  ``cov(c_s, r) / var(r)`` with ``c_s,t = ΔV_s,t / E_{t-1}`` (so that ``Σ_s c_s,t = r_t``): the
  Euler share of the return variance (they add up to 1); ``volatility_contribution`` is that
  share of ``annual_volatility``.

At ruin the book's equity is floored at 0: the shortfall ``-E`` at the ruin point is credited
to the symbols held then, in proportion to their gross value, so that the P&L still adds up.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from quant_pipelines.backtest._core import ChangePoints
from quant_pipelines.backtest._keys import INT_METRICS, METRIC_KEYS
from quant_pipelines.backtest._stats import equity_stats
from quant_pipelines.backtest._trades import RunEnds, TradeArrays, extract_trades, trade_stats
from quant_pipelines.backtest.portfolio._kernel import (
    EV_BAR,
    EV_EQUITY,
    EV_FEE,
    EV_NEW,
    EV_OLD,
    EV_OPEN,
    EV_PRICE,
    EV_SLEEVE,
    EV_SYMBOL,
)

PORTFOLIO_METRIC_KEYS: tuple[str, ...] = (
    "avg_holdings",
    "benchmark_cagr",
    "benchmark_sharpe",
    "benchmark_max_drawdown",
)
"""Metrics a portfolio reports beyond :data:`~quant_pipelines.backtest._keys.METRIC_KEYS`."""


class RawBook(NamedTuple):
    """What the kernel produced (see ``_kernel.book_loop``)."""

    units: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    benchmark: np.ndarray
    ev_i: np.ndarray
    ev_f: np.ndarray
    ruin_bar: int
    ruin_at_open: bool
    end_units: np.ndarray
    end_marks: np.ndarray
    end_sleeve: np.ndarray


def ruin_credit(raw: RawBook) -> np.ndarray:
    """Per symbol, its share of the shortfall at ruin: its share of the gross value held."""
    gross = np.abs(raw.end_units * raw.end_marks)
    total = gross.sum()
    return gross / total if total > 0.0 else np.zeros(len(gross))


def trades_and_ends(raw: RawBook, n: int, initial_equity: float) -> TradeArrays:
    """Round trips per symbol (``run`` = symbol position), valued on the symbols' sleeves."""
    width = len(raw.end_units)
    order = np.argsort(raw.ev_i[EV_SYMBOL], kind="stable")  # by symbol, then bar
    f = raw.ev_f[:, order]
    cps = ChangePoints(
        raw.ev_i[EV_SYMBOL, order],
        raw.ev_i[EV_BAR, order],
        f[EV_OLD],
        f[EV_NEW],
        np.zeros(len(order)),
        f[EV_SLEEVE],
        f[EV_OPEN],
        f[EV_PRICE],
        f[EV_FEE],
    )
    sleeve_value = raw.end_sleeve + raw.end_units * raw.end_marks
    rb = raw.ruin_bar
    if rb < 0:
        bar, held_to, is_open = n - 1, n, True
    else:
        bar, held_to, is_open = rb, rb if raw.ruin_at_open else rb + 1, False
        shortfall = sleeve_value.sum() - (width - 1) * initial_equity  # the equity at ruin
        sleeve_value = sleeve_value - ruin_credit(raw) * shortfall
    ends = RunEnds(
        raw.end_units.copy(),
        sleeve_value,
        np.full(width, bar),
        np.full(width, held_to),
        raw.end_marks.copy(),
        np.full(width, is_open),
    )
    return extract_trades(cps, ends, n)


def book_metrics(
    raw: RawBook,
    trades: TradeArrays,
    *,
    initial_equity: float,
    periods_per_year: float,
    first_close: np.ndarray,
    last_close: np.ndarray,
) -> dict[str, float | int]:
    """The metrics of :data:`METRIC_KEYS` and :data:`PORTFOLIO_METRIC_KEYS`, as Python numbers."""
    n = len(raw.equity)
    out = equity_stats(
        raw.equity[:, None], initial_equity, periods_per_year, safe=raw.ruin_bar >= 0
    )
    out.update(trade_stats(trades.run, trades.pnl, 1))
    held = np.count_nonzero(raw.units, axis=1)
    out["exposure"] = np.array([np.count_nonzero(held) / n])
    f = raw.ev_f
    du = np.abs(f[EV_NEW] - f[EV_OLD])
    with np.errstate(invalid="ignore", divide="ignore"):
        traded = np.where(f[EV_EQUITY] > 0, du * f[EV_PRICE] / f[EV_EQUITY], 0.0)
    years = (n - 1) / periods_per_year
    out["turnover"] = np.array([traded.sum() / years if years > 0 else 0.0])
    out["buy_and_hold_return"] = np.array([np.mean(last_close / first_close) - 1.0])
    out["final_equity"] = raw.equity[-1:].copy()
    out["total_costs"] = np.array([(f[EV_FEE] + du * np.abs(f[EV_PRICE] - f[EV_OPEN])).sum()])
    bench = equity_stats(raw.benchmark[:, None], initial_equity, periods_per_year, safe=True)
    metrics: dict[str, float | int] = {
        k: int(out[k][0]) if k in INT_METRICS else float(out[k][0]) for k in METRIC_KEYS
    }
    metrics["avg_holdings"] = float(held.mean())
    metrics["benchmark_cagr"] = float(bench["cagr"][0])
    metrics["benchmark_sharpe"] = float(bench["sharpe"][0])
    metrics["benchmark_max_drawdown"] = float(bench["max_drawdown"][0])
    return metrics


def symbol_pnl(raw: RawBook, marks: np.ndarray, initial_equity: float) -> np.ndarray:
    """``(n_bars, n_symbols)``: each symbol's P&L to date ``V_s`` at each close.

    From the ruin bar on, ``V_s`` stays at its value at the ruin point less its share of the
    shortfall, so that ``Σ_s V_s = -E_0`` there (equity 0).
    """
    n, width = raw.units.shape
    f = raw.ev_f
    flows = np.zeros((n, width))
    flow = -(f[EV_NEW] - f[EV_OLD]) * f[EV_PRICE] - f[EV_FEE]
    np.add.at(flows, (raw.ev_i[EV_BAR], raw.ev_i[EV_SYMBOL]), flow)
    paid = np.cumsum(flows, axis=0)
    value = paid + raw.units * np.nan_to_num(marks)
    rb = raw.ruin_bar
    if rb >= 0:
        at_ruin = paid[rb] + raw.end_units * raw.end_marks
        equity = initial_equity + at_ruin.sum()  # <= 0
        value[rb:] = at_ruin - ruin_credit(raw) * equity
    return value


def contributions(
    raw: RawBook,
    marks: np.ndarray,
    symbols: tuple[str, ...],
    *,
    initial_equity: float,
    annual_volatility: float,
) -> pd.DataFrame:
    """Per-symbol P&L, costs and contributions to return and risk (module docstring)."""
    value = symbol_pnl(raw, marks, initial_equity)
    prev_e = np.concatenate(([initial_equity], raw.equity[:-1]))
    dv = np.diff(np.vstack((np.zeros(len(symbols)), value)), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(prev_e[:, None] > 0, dv / prev_e[:, None], 0.0)[1:]
    r = c.sum(axis=1)
    var = r.var(ddof=1) if len(r) > 1 else 0.0
    if var > 0:
        risk = ((c - c.mean(axis=0)) * (r - r.mean())[:, None]).sum(axis=0) / (len(r) - 1) / var
    else:
        risk = np.zeros(len(symbols))
    f = raw.ev_f
    du = np.abs(f[EV_NEW] - f[EV_OLD])
    cost = f[EV_FEE] + du * np.abs(f[EV_PRICE] - f[EV_OPEN])
    sym = raw.ev_i[EV_SYMBOL]
    width = len(symbols)
    pnl = value[-1]
    return pd.DataFrame(
        {
            "pnl": pnl,
            "costs": np.bincount(sym, weights=cost, minlength=width),
            "n_fills": np.bincount(sym, minlength=width),
            "return_contribution": pnl / initial_equity,
            "risk_contribution": risk,
            "volatility_contribution": risk * annual_volatility,
        },
        index=pd.Index(symbols, name="symbol"),
    )
