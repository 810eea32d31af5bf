"""An independent, plain bar-by-bar reference of the backtest's accounting (docs/backtest.md).

Written from the documented rules only (it does not import the engine): units are held between
trades; at bar k's open the book trades to the target decided at k-1's close if it differs from
the one in force; new units = target x equity at the open / fill price; fill = open x (1 + s)
buying, open x (1 - s) selling (no trade when the target lies inside the slippage band of the
holding); commission = rate x |delta units| x fill, from cash; the last target never fills;
equity <= 0 at an open or close => flat forever.
"""

from __future__ import annotations


def reference_equity(
    opens: list[float],
    closes: list[float],
    targets: list[float],
    *,
    commission: float,
    slippage_bps: float,
    initial_equity: float = 100_000.0,
    max_leverage: float = 1.0,
) -> list[float]:
    """Equity at each close."""
    slip = slippage_bps / 10_000.0
    units = 0.0
    cash = initial_equity
    in_force = 0.0
    bust = False
    curve: list[float] = []
    for k in range(len(opens)):
        if bust:
            curve.append(0.0)
            continue
        if k > 0:
            at_open = cash + units * opens[k]
            if at_open <= 0.0:
                bust = True
                curve.append(0.0)
                continue
            wanted = max(-max_leverage, min(max_leverage, targets[k - 1]))
            if wanted != in_force:
                buy_price = opens[k] * (1.0 + slip)
                sell_price = opens[k] * (1.0 - slip)
                if wanted * at_open / buy_price > units:
                    price = buy_price
                elif wanted * at_open / sell_price < units:
                    price = sell_price
                else:
                    price = None
                if price is not None:
                    new_units = wanted * at_open / price
                    traded = new_units - units
                    cash -= traded * price + commission * abs(traded) * price
                    units = new_units
                in_force = wanted
        value = cash + units * closes[k]
        if value <= 0.0:
            bust = True
            value = 0.0
        curve.append(value)
    return curve
