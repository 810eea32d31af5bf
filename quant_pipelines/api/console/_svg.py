"""Small SVG building blocks for the console's server-rendered charts: scales, ticks, paths.

Plain string building, no plotting library: a 60-session chart renders in a few milliseconds,
where matplotlib's SVG backend needs 60 to 130 ms for the same figure, more than ten JSON
answers (the console's benchmark goal). Every text that reaches the SVG goes through
:func:`esc`; shapes use presentation attributes only (no ``style``), so the console's
Content-Security-Policy (no inline styles, no scripts) holds.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Font used by every label.
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def esc(text: object) -> str:
    """``text`` escaped for SVG/HTML content and attribute values."""
    return html.escape(str(text), quote=True)


def num(value: float) -> str:
    """A coordinate with one decimal (keeps the document small)."""
    return f"{value:.1f}"


def finite(value: object) -> float | None:
    """``value`` as a finite float, or None (None, NaN, infinities, non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Scale:
    """A linear map from data ``[lo, hi]`` to pixels ``[start, end]`` (end may be < start)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        if span <= 0:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / span * (self.end - self.start)


def bounds(values: Iterable[float | None], *, pad: float = 0.06) -> tuple[float, float]:
    """Min and max of the finite values, padded by ``pad`` of the range (a flat series gets a
    unit-free margin); ``(0, 1)`` when there is no finite value."""
    vals = [v for v in (finite(x) for x in values) if v is not None]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    margin = (hi - lo) * pad if hi > lo else (abs(hi) * 0.05 or 0.5)
    return lo - margin, hi + margin


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values inside ``[lo, hi]`` (steps of 1, 2 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def tick_label(value: float) -> str:
    """A short axis label: 1.2k, 3.4M, 0.75, 12,345."""
    size = abs(value)
    if size >= 1e9:
        return f"{value / 1e9:.3g}B"
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:.4g}"


def text(
    x: float,
    y: float,
    label: object,
    *,
    size: int = 11,
    anchor: str = "start",
    fill: str = "#444",
    weight: str = "normal",
) -> str:
    """A text element (escaped)."""
    return (
        f'<text x="{num(x)}" y="{num(y)}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{fill}" font-weight="{weight}">{esc(label)}</text>'
    )


def line(
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    *,
    stroke: str = "#ccc",
    width: float = 1.0,
    dash: str | None = None,
) -> str:
    """A straight line."""
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" '
        f'stroke="{stroke}" stroke-width="{width}"{extra}/>'
    )


def rect(x: float, y: float, w: float, h: float, *, fill: str, opacity: float = 1.0) -> str:
    """A filled rectangle (height and width at least 0.5 px, so a flat candle shows)."""
    extra = f' fill-opacity="{opacity}"' if opacity < 1 else ""
    return (
        f'<rect x="{num(x)}" y="{num(y)}" width="{num(max(w, 0.5))}" '
        f'height="{num(max(h, 0.5))}" fill="{fill}"{extra}/>'
    )


def polyline(
    points: Sequence[tuple[float, float | None]],
    *,
    stroke: str,
    width: float = 1.5,
    dash: str | None = None,
) -> str:
    """Polylines through ``points``; a None y breaks the line into separate segments."""
    segments: list[list[str]] = [[]]
    for x, y in points:
        if y is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(f"{num(x)},{num(y)}")
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return "".join(
        f'<polyline points="{" ".join(seg)}" fill="none" stroke="{stroke}" '
        f'stroke-width="{width}" stroke-linejoin="round"{extra}/>'
        for seg in segments
        if len(seg) > 1
    )


def document(width: int, height: int, body: Iterable[str], *, title: str, css_class: str) -> str:
    """The ``<svg>`` element: scalable (viewBox), titled for screen readers."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{esc(css_class)}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="{esc(FONT)}"><title>{esc(title)}</title>{"".join(body)}</svg>'
    )
