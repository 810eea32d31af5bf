"""Round-trip trades from change points, for one run or many at once.

A trade is a maximal stretch during which the held units keep one non-zero sign; resizing on
the same side stays inside the trade, a flip closes one trade and opens another at the same
fill. Fill costs (commission plus slippage against the open) are split between the closing and
the opening leg in proportion to the units of each leg. P&L is in equity terms:
``pnl = B - A``, where ``A`` is the pre-fill equity at the entry open less the costs of the leg
that closed the previous trade, and ``B`` is the pre-fill equity at the exit open less the costs
of this trade's closing leg. Trades and flat stretches therefore add up to the equity change. A
trade still open at the end is valued at the last close (``is_open``); one ended by ruin at 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from quant_pipelines.backtest._core import ChangePoints


class TradeArrays(NamedTuple):
    """Trades as parallel arrays, ordered by run then entry bar."""

    run: np.ndarray
    entry_bar: np.ndarray
    exit_bar: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    side: np.ndarray
    pnl: np.ndarray
    ret: np.ndarray
    bars_held: np.ndarray
    is_open: np.ndarray


class RunEnds(NamedTuple):
    """Per-run end state used to close trades still open at the end.

    ``units`` held at the end, ``value`` (final equity), ``bar`` (last bar or ruin bar),
    ``held_to`` (open-to-open position: n at the end of data, ruin bar (+1 if at the close)),
    ``price`` (last close or the ruin price), ``is_open`` (False when ended by ruin).
    """

    units: np.ndarray
    value: np.ndarray
    bar: np.ndarray
    held_to: np.ndarray
    price: np.ndarray
    is_open: np.ndarray


def extract_trades(cps: ChangePoints, ends: RunEnds, n_bars: int) -> TradeArrays:
    """Pair entry and exit events into trades.

    Args:
        cps: Change points of all runs (ordered by run, then bar).
        ends: Per-run end state.
        n_bars: Bars per run.

    Returns:
        The trades.
    """
    old, new = cps.old, cps.new
    so, sn = np.sign(old), np.sign(new)
    flip = sn != so
    closes = flip & (so != 0)
    opens = flip & (sn != 0)
    du = np.abs(new - old)
    cost = cps.commission + du * np.abs(cps.price - cps.open)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(opens, np.abs(old) / du, 1.0)
    base = cps.equity - np.where(closes, cost * share, 0.0)

    end_runs = np.flatnonzero(ends.units != 0.0)
    parts = (
        (cps.bar, ends.bar),
        (cps.bar, ends.held_to),
        (base, ends.value),
        (cps.price, ends.price),
        (np.zeros(len(closes), dtype=bool), ends.is_open),
    )
    c_bar, c_pos, c_val, c_price, c_open = (
        np.concatenate((a[closes], b[end_runs])) for a, b in parts
    )
    if len(ends.units) > 1:  # end events go after their run's closes
        c_run = np.concatenate((cps.run[closes], end_runs))
        last = np.full(len(end_runs), n_bars + 1)
        order = np.argsort(c_run * (n_bars + 2) + np.concatenate((cps.bar[closes], last)))
        c_bar, c_pos, c_val, c_price, c_open = (
            x[order] for x in (c_bar, c_pos, c_val, c_price, c_open)
        )

    e_bar = cps.bar[opens]
    e_val = base[opens]
    pnl = c_val - e_val
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.where(e_val > 0, pnl / e_val, 0.0)
    return TradeArrays(
        cps.run[opens],
        e_bar,
        c_bar,
        cps.price[opens],
        c_price,
        sn[opens],
        pnl,
        ret,
        c_pos - e_bar,
        c_open,
    )


def trade_stats(run: np.ndarray, pnl: np.ndarray, n_runs: int) -> dict[str, np.ndarray]:
    """Per-run trade counts, win rate and profit factor from each trade's run and P&L.

    Win rate is the fraction of trades with positive P&L (0 without trades). Profit factor is
    gross profit over gross loss: +inf with profits and no loss, 0 without profits.
    """
    if n_runs == 1:  # plain sums are cheaper than bincount for one run
        n = float(len(pnl))
        win = float(pnl[pnl > 0].sum())
        loss = float(-pnl[pnl < 0].sum())
        pf = win / loss if loss > 0 else (math.inf if win > 0 else 0.0)
        return {
            "n_trades": np.array([n]),
            "win_rate": np.array([float((pnl > 0).sum()) / n if n else 0.0]),
            "profit_factor": np.array([pf]),
        }
    count = np.bincount(run, minlength=n_runs).astype(np.float64)
    wins = np.bincount(run, weights=(pnl > 0).astype(np.float64), minlength=n_runs)
    gross_win = np.bincount(run, weights=np.maximum(pnl, 0.0), minlength=n_runs)
    gross_loss = np.bincount(run, weights=np.maximum(-pnl, 0.0), minlength=n_runs)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(count > 0, wins / count, 0.0)
        pf = np.where(gross_loss > 0, gross_win / gross_loss, np.where(gross_win > 0, np.inf, 0.0))
    return {"n_trades": count, "win_rate": win_rate, "profit_factor": pf}
