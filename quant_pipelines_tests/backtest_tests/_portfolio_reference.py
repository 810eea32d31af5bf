"""An independent, plain bar-by-bar reference of the portfolio book (docs/portfolio.md).

Written from the documented rules only, in plain Python (it imports nothing from the engine):

* the union of the symbols' sessions is the clock; a symbol without a session keeps its units
  and is marked at its last close; its orders wait for its next session's open;
* weights: negatives become 0 unless shorts are allowed; a row whose sum of |w| exceeds the
  gross cap is scaled down to it;
* orders: "on_change" orders a symbol when its weight changes; "daily" / "weekly" / "monthly"
  order every symbol on the first bar and on the first bar of each day / ISO week / month;
  ("drift", x) orders every symbol when some held weight is more than x off its target;
* at an open the equity E = cash + sum(units * (open, or last close)) is taken before any fill;
  E <= 0 is ruin. An order trades towards target * E / price: the buy price open * (1 + s)
  if that gives more units than held, else the sell price open * (1 - s) if that gives fewer,
  else the order is done with no trade. With volume-share costs at most
  participation * ADV units trade (ADV and sigma of the symbol's previous session; none at its
  first session), the rest of the order waiting for the next session, and the price moves a
  further k * sigma * sqrt(q / ADV) of the open against the trader (a sale never below 0);
  commission = rate * q * price; cash -= signed q * price + commission;
* at a close the equity is cash + sum(units * last close); E <= 0 is ruin: flat 0 for good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RefCosts:
    """Costs of one symbol; ``impact is None`` means flat costs."""

    commission: float
    slippage_bps: float
    impact: float | None = None
    participation: float = 1.0
    window: int = 20


def _adv_sigma(volume: list[float], close: list[float], window: int) -> list[tuple[float, float]]:
    """(ADV, sigma) at each of the symbol's sessions, from that session and earlier ones."""
    out = []
    for t in range(len(close)):
        vols = volume[max(0, t - window + 1) : t + 1]
        adv = sum(vols) / len(vols)
        rets = [math.log(close[j] / close[j - 1]) for j in range(max(1, t - window + 1), t + 1)]
        if len(rets) >= 2:
            mean = sum(rets) / len(rets)
            sigma = math.sqrt(sum((r - mean) ** 2 for r in rets) / (len(rets) - 1))
        else:
            sigma = 0.0
        out.append((adv, sigma))
    return out


def _period(ts, rule: str) -> tuple:
    if rule == "weekly":
        iso = ts.isocalendar()
        return (iso[0], iso[1])
    if rule == "monthly":
        return (ts.year, ts.month)
    return (ts,)


def reference_portfolio(
    sessions: dict[str, dict],
    weights: dict[str, list[float]],
    dates: list,
    *,
    costs: dict[str, RefCosts],
    initial_equity: float,
    max_gross_leverage: float,
    allow_short: bool,
    rule: str | tuple[str, float],
) -> list[float]:
    """Equity at each close of ``dates`` (the sorted union of the sessions).

    Args:
        sessions: Per symbol, ``{date: (open, close, volume)}``.
        weights: Per symbol, one weight per date.
        dates: The union of the sessions, sorted.
        costs: Per symbol costs.
        initial_equity: Starting cash.
        max_gross_leverage: Gross cap of a weight row.
        allow_short: Whether negative weights stand.
        rule: "on_change", "daily", "weekly", "monthly" or ("drift", x).
    """
    symbols = list(weights)
    target = {s: [] for s in symbols}
    for t in range(len(dates)):
        row = {s: weights[s][t] if allow_short else max(weights[s][t], 0.0) for s in symbols}
        gross = sum(abs(v) for v in row.values())
        for s in symbols:
            target[s].append(
                row[s] * max_gross_leverage / gross if gross > max_gross_leverage else row[s]
            )
    stats = {}
    for s in symbols:
        days = sorted(sessions[s])
        window = costs[s].window
        stats[s] = dict(
            zip(
                days,
                _adv_sigma([sessions[s][d][2] for d in days], [sessions[s][d][1] for d in days],
                           window),
                strict=True,
            )
        )  # fmt: skip
    previous = {s: None for s in symbols}  # the symbol's last session before today
    units = dict.fromkeys(symbols, 0.0)
    last = dict.fromkeys(symbols, 0.0)
    order = dict.fromkeys(symbols)  # pending target, or None
    ordered = dict.fromkeys(symbols, 0.0)  # on_change: the last target ordered
    cash = initial_equity
    ruined = False
    curve = []
    for k, day in enumerate(dates):
        if ruined:
            curve.append(0.0)
            continue
        if k > 0:
            equity = cash
            for s in symbols:
                bar = sessions[s].get(day)
                equity += units[s] * (bar[0] if bar else last[s])
            if equity <= 0.0:
                ruined = True
                curve.append(0.0)
                continue
            for s in symbols:
                bar = sessions[s].get(day)
                if bar is None or order[s] is None:
                    continue
                cash, done = _fill(s, bar[0], equity, cash, units, order[s], costs[s],
                                   stats[s].get(previous[s]))  # fmt: skip
                if done:
                    order[s] = None
        value = cash
        for s in symbols:
            bar = sessions[s].get(day)
            if bar:
                last[s] = bar[1]
                previous[s] = day
            value += units[s] * last[s]
        if value <= 0.0:
            ruined = True
            curve.append(0.0)
            continue
        curve.append(value)
        if rule == "on_change":
            for s in symbols:
                if target[s][k] != ordered[s]:
                    ordered[s] = order[s] = target[s][k]
            continue
        if isinstance(rule, tuple):
            go = any(abs(units[s] * last[s] / value - target[s][k]) > rule[1] for s in symbols)
        else:
            go = k == 0 or _period(day, rule) != _period(dates[k - 1], rule)
        if go:
            for s in symbols:
                order[s] = target[s][k]
    return curve


def _fill(
    s: str,
    open_price: float,
    equity: float,
    cash: float,
    units: dict[str, float],
    target: float,
    c: RefCosts,
    stat: tuple[float, float] | None,
) -> tuple[float, bool]:
    """One fill of symbol ``s``; returns the new cash and whether the order is done."""
    slip = c.slippage_bps / 10_000.0
    held = units[s]
    buy = open_price * (1.0 + slip)
    sell = open_price * (1.0 - slip)
    if target * equity / buy > held:
        side, wanted = 1.0, target * equity / buy
    elif target * equity / sell < held:
        side, wanted = -1.0, target * equity / sell
    else:
        return cash, True
    q = abs(wanted - held)
    done = True
    extra = 0.0
    if c.impact is not None:
        adv, sigma = stat if stat is not None else (0.0, 0.0)
        cap = c.participation * adv
        if q > cap:
            if cap <= 0.0:
                return cash, False
            q, done = cap, False
        extra = c.impact * sigma * math.sqrt(q / adv)
    price = (
        open_price * (1.0 + slip + extra) if side > 0 else open_price * max(1.0 - slip - extra, 0.0)
    )
    cash -= side * q * price + c.commission * q * price
    units[s] = held + side * q
    return cash, done
