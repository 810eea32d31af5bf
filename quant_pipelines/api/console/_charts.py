"""The console's charts as inline SVG: an anomaly in its 60 sessions, and KPI sparklines.

The anomaly chart stacks five panels on one session axis: the symbol's candles (the flagged
bar in an orange band), its volume, the other symbols of its asset class normalised to 100
on the window's first session, and the two detectors' scores with their warning and critical
thresholds. See :mod:`._svg` for why no plotting library draws them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from quant_pipelines.api.console import _svg as s

WIDTH, LEFT, RIGHT = 960, 64, 150
UP, DOWN, FLAG = "#2e7d32", "#c62828", "#ef6c00"
PALETTE = ("#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593")
#: Panels: (key, title, height in px).
PANELS = (
    ("price", "Price (OHLC)", 190),
    ("volume", "Volume", 60),
    ("peers", "Class peers, close normalised to 100", 120),
    ("iforest", "Isolation Forest score", 64),
    ("prophet", "Prophet distance (interval widths)", 64),
)
GAP, TOP, BOTTOM = 26, 22, 30


@dataclass(frozen=True)
class ChartData:
    """What the anomaly chart draws; every list is aligned on ``dates``.

    Attributes:
        symbol: The anomaly's symbol.
        dates: The sessions of the window, oldest first.
        open: Opens (None where missing).
        high: Highs.
        low: Lows.
        close: Closes.
        volume: Volumes.
        flagged: Position of the flagged bar in ``dates``, or None when it is not stored.
        iforest: Isolation Forest scores of the bars (None when unscored).
        prophet: Prophet distances of the bars.
        normalised: Symbol -> closes normalised to 100 (the anomaly's symbol and its peers).
        thresholds: ``iforest_warning``, ``iforest_critical``, ``prophet_price_warning`` ...
    """

    symbol: str
    dates: Sequence[dt.datetime]
    open: Sequence[float | None]
    high: Sequence[float | None]
    low: Sequence[float | None]
    close: Sequence[float | None]
    volume: Sequence[float | None]
    flagged: int | None
    iforest: Sequence[float | None]
    prophet: Sequence[float | None]
    normalised: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)


def _threshold_lines(y: s.Scale, x0: float, x1: float, marks: Sequence[tuple[str, float]]):
    out: list[str] = []
    placed: list[float] = []
    for label, value in sorted(marks, key=lambda m: y(m[1])):  # labels top-down, 11 px apart
        colour = DOWN if "critical" in label else FLAG
        out.append(s.line(x0, y(value), x1, y(value), stroke=colour, dash="4 3"))
        ly = max([y(value) + 4, *[p + 11 for p in placed]])
        placed.append(ly)
        out.append(s.text(x1 + 4, ly, f"{label} {value:.3g}", size=10, fill=colour))
    return out


def _y_axis(y: s.Scale, x0: float, x1: float, lo: float, hi: float) -> list[str]:
    out = []
    for tick in s.nice_ticks(lo, hi, 3):
        out.append(s.line(x0, y(tick), x1, y(tick), stroke="#eee"))
        out.append(s.text(x0 - 6, y(tick) + 4, s.tick_label(tick), size=10, anchor="end"))
    return out


def _price(d: ChartData, x, top: float, height: float, x1: float) -> list[str]:
    lo, hi = s.bounds([*d.low, *d.high])
    y = s.Scale(lo, hi, top + height, top)
    out = _y_axis(y, LEFT, x1, lo, hi)
    half = max(1.0, (x(1) - x(0)) * 0.35)
    for i, (o, h, lw, c) in enumerate(zip(d.open, d.high, d.low, d.close, strict=True)):
        o, h, lw, c = s.finite(o), s.finite(h), s.finite(lw), s.finite(c)
        if h is not None and lw is not None:
            out.append(s.line(x(i), y(h), x(i), y(lw), stroke="#555"))
        if o is not None and c is not None:
            colour = UP if c >= o else DOWN
            out.append(
                s.rect(
                    x(i) - half, y(max(o, c)), 2 * half, y(min(o, c)) - y(max(o, c)), fill=colour
                )
            )
    if d.flagged is not None and s.finite(d.high[d.flagged]) is not None:
        xf, yf = x(d.flagged), y(s.finite(d.high[d.flagged]) or hi) - 6
        out.append(f'<path d="M{s.num(xf)},{s.num(yf)} l-5,-9 h10 z" fill="{FLAG}"/>')
        out.append(
            s.text(xf, yf - 12, "flagged", size=10, anchor="middle", fill=FLAG, weight="bold")
        )
    return out


def _volume(d: ChartData, x, top: float, height: float, x1: float) -> list[str]:
    hi = max([v for v in (s.finite(v) for v in d.volume) if v is not None], default=1.0) or 1.0
    y = s.Scale(0.0, hi * 1.05, top + height, top)
    out = _y_axis(y, LEFT, x1, 0.0, hi)
    half = max(1.0, (x(1) - x(0)) * 0.35)
    for i, v in enumerate(d.volume):
        v = s.finite(v)
        if v is not None:
            colour = FLAG if i == d.flagged else "#90a4ae"
            out.append(s.rect(x(i) - half, y(v), 2 * half, y(0.0) - y(v), fill=colour))
    return out


def _peers(d: ChartData, x, top: float, height: float, x1: float) -> list[str]:
    series = dict(d.normalised)
    if not series:
        return [s.text(LEFT + 8, top + height / 2, "no other symbol of the class", size=11)]
    lo, hi = s.bounds([v for vals in series.values() for v in vals])
    y = s.Scale(lo, hi, top + height, top)
    out = _y_axis(y, LEFT, x1, lo, hi)
    out.append(s.line(LEFT, y(100.0), x1, y(100.0), stroke="#bbb", dash="2 3"))
    others = [name for name in series if name != d.symbol]
    order = [*others, *([d.symbol] if d.symbol in series else [])]  # the symbol on top
    labels: list[tuple[float, str, str]] = []
    for k, name in enumerate(order):
        own = name == d.symbol
        colour = "#111" if own else PALETTE[k % len(PALETTE)]
        vals = series[name]
        pts = [(x(i), None if s.finite(v) is None else y(float(v))) for i, v in enumerate(vals)]
        out.append(s.polyline(pts, stroke=colour, width=2.2 if own else 1.2))
        last = next((p for p in reversed(pts) if p[1] is not None), None)
        if last is not None:
            labels.append((last[1] or 0.0, name, colour))
    placed: list[float] = []
    for ly, name, colour in sorted(labels):  # keep the end labels 11 px apart
        ly = max([ly, *[p + 11 for p in placed]])
        placed.append(ly)
        out.append(
            s.text(
                x1 + 4,
                ly + 4,
                name,
                size=10,
                fill=colour,
                weight="bold" if name == d.symbol else "normal",
            )
        )
    return out


def _scores(d: ChartData, key: str, x, top: float, height: float, x1: float) -> list[str]:
    values = d.iforest if key == "iforest" else d.prophet
    names = (
        (("warning", "iforest_warning"), ("critical", "iforest_critical"))
        if key == "iforest"
        else (
            ("price warning", "prophet_price_warning"),
            ("volume warning", "prophet_volume_warning"),
        )
    )
    marks = [(label, float(d.thresholds[k])) for label, k in names if k in d.thresholds]
    lo, hi = s.bounds([*values, *(m[1] for m in marks), 0.0])
    lo = min(lo, 0.0)
    y = s.Scale(lo, hi, top + height, top)
    out = _y_axis(y, LEFT, x1, lo, hi)
    out += _threshold_lines(y, LEFT, x1, marks)
    pts = [(x(i), None if s.finite(v) is None else y(float(v))) for i, v in enumerate(values)]
    out.append(s.polyline(pts, stroke="#37474f", width=1.4))
    if d.flagged is not None and s.finite(values[d.flagged]) is not None:
        yf = y(float(values[d.flagged]))
        out.append(f'<circle cx="{s.num(x(d.flagged))}" cy="{s.num(yf)}" r="3.5" fill="{FLAG}"/>')
    return out


def anomaly_chart(d: ChartData) -> str:
    """The anomaly's chart: candles, volume, class peers and detector scores, as inline SVG.

    Args:
        d: The window's data.

    Returns:
        An ``<svg>`` element (no XML declaration), safe to embed in the page as is.
    """
    n = max(len(d.dates), 1)
    x1 = WIDTH - RIGHT
    x = s.Scale(-0.5, n - 0.5, LEFT, x1)
    height = TOP + sum(h for _, _, h in PANELS) + GAP * (len(PANELS) - 1) + BOTTOM
    body: list[str] = [s.rect(0, 0, WIDTH, height, fill="#fff")]
    if d.flagged is not None:
        band = max(4.0, x(1) - x(0))
        body.append(
            s.rect(
                x(d.flagged) - band / 2,
                TOP - 4,
                band,
                height - TOP - BOTTOM + 8,
                fill=FLAG,
                opacity=0.14,
            )
        )
    top = TOP
    for key, title, panel_height in PANELS:
        body.append(s.text(LEFT, top - 6, title, size=11, fill="#222", weight="bold"))
        if key == "price":
            body += _price(d, x, top, panel_height, x1)
        elif key == "volume":
            body += _volume(d, x, top, panel_height, x1)
        elif key == "peers":
            body += _peers(d, x, top, panel_height, x1)
        else:
            body += _scores(d, key, x, top, panel_height, x1)
        body.append(s.line(LEFT, top + panel_height, x1, top + panel_height, stroke="#999"))
        top += panel_height + GAP
    bottom = top - GAP
    step = max(1, n // 6)  # about six dates, and the flagged one (its neighbours give way)
    ticks = {i for i in range(0, n, step) if d.flagged is None or abs(i - d.flagged) > step // 2}
    for i in sorted(ticks | ({d.flagged} if d.flagged is not None else set())):
        if i < len(d.dates):
            colour = FLAG if i == d.flagged else "#444"
            body.append(s.line(x(i), bottom, x(i), bottom + 4, stroke="#999"))
            body.append(
                s.text(
                    x(i),
                    bottom + 16,
                    f"{d.dates[i]:%Y-%m-%d}",
                    size=10,
                    anchor="middle",
                    fill=colour,
                )
            )
    title = f"{d.symbol}: {len(d.dates)} sessions around the flagged bar"
    return s.document(WIDTH, height, body, title=title, css_class="anomaly-chart")


def sparkline(
    values: Sequence[float | None],
    *,
    title: str,
    width: int = 180,
    height: int = 40,
    bars: bool = False,
) -> str:
    """A small trend chart of daily values (None: no data that day), last value dotted.

    Args:
        values: One value per day, oldest first.
        title: Accessible title (what the series is).
        width: Width in px.
        height: Height in px.
        bars: Draw bars instead of a line.

    Returns:
        An ``<svg>`` element.
    """
    n = max(len(values), 1)
    lo, hi = s.bounds([*values, 0.0], pad=0.1)
    lo = min(lo, 0.0)
    x = s.Scale(-0.5, n - 0.5, 2, width - 4)
    y = s.Scale(lo, hi, height - 3, 3)
    body = [s.line(2, y(0.0), width - 2, y(0.0), stroke="#ddd")]
    if bars:
        half = max(0.6, (x(1) - x(0)) * 0.35)
        for i, v in enumerate(values):
            v = s.finite(v)
            if v is not None:
                body.append(s.rect(x(i) - half, y(v), 2 * half, y(0.0) - y(v), fill="#607d8b"))
    else:
        pts = [(x(i), None if s.finite(v) is None else y(float(v))) for i, v in enumerate(values)]
        body.append(s.polyline(pts, stroke="#1565c0", width=1.5))
        for i, (px, py) in enumerate(pts):  # a day between two empty ones: a dot, not nothing
            alone = all(not 0 <= j < n or pts[j][1] is None for j in (i - 1, i + 1))
            if py is not None and alone:
                body.append(f'<circle cx="{s.num(px)}" cy="{s.num(py)}" r="1.5" fill="#1565c0"/>')
        last = next(((px, py) for px, py in reversed(pts) if py is not None), None)
        if last is not None:
            body.append(
                f'<circle cx="{s.num(last[0])}" cy="{s.num(last[1])}" r="2.5" fill="#1565c0"/>'
            )
    return s.document(width, height, body, title=title, css_class="sparkline")
