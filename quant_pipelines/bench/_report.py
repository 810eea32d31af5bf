"""The figure type shared by every benchmark and the markdown report built from them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One benchmark figure and the reference it is compared with in the same run.

    Attributes:
        area: The package area, for grouping ("storage", "backtest", ...).
        name: What was measured.
        value: The measured figure.
        unit: Unit of ``value`` and ``reference_value`` (e.g. "bars/s").
        reference_name: What the reference is.
        reference_value: The reference figure, measured in the same run.
        goal: Minimum acceptable ``ratio`` (None when the figure has no goal).
        higher_is_better: False for durations, where the ratio is reference/value.
    """

    area: str
    name: str
    value: float
    unit: str
    reference_name: str
    reference_value: float
    goal: float | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        """``value / reference`` (or the inverse for durations); >1 means better than reference."""
        if self.higher_is_better:
            return self.value / self.reference_value if self.reference_value else float("nan")
        return self.reference_value / self.value if self.value else float("nan")

    @property
    def meets_goal(self) -> bool | None:
        """Whether the ratio reaches the goal, or None when there is no goal."""
        return None if self.goal is None else self.ratio >= self.goal


def timed(fn: Callable[[], object], *, repeat: int = 3) -> float:
    """Best wall-clock seconds of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _fmt(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.0f}"


def render_markdown(
    figures: Sequence[Figure], *, header: str = "", notes: Mapping[str, str] | None = None
) -> str:
    """Renders figures as a markdown table grouped by area.

    Args:
        figures: The figures, in report order.
        header: Markdown put before the tables.
        notes: Benchmark module -> how to read its figures (its ``NOTES``), listed after
            the tables under "Notes".
    """
    lines = [header] if header else []
    for area in dict.fromkeys(f.area for f in figures):
        lines += [
            f"\n## {area}\n",
            "| figure | value | reference | reference value | ratio | goal | met |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in (f for f in figures if f.area == area):
            goal = "" if f.goal is None else f"≥ {f.goal:g}"
            met = {None: "", True: "yes", False: "**no**"}[f.meets_goal]
            lines.append(
                f"| {f.name} | {_fmt(f.value)} {f.unit} | {f.reference_name} | "
                f"{_fmt(f.reference_value)} {f.unit} | {f.ratio:.3f} | {goal} | {met} |"
            )
    if notes:
        lines.append("\n## Notes\n")
        lines += [f"- **{name}**: {text}" for name, text in notes.items()]
    return "\n".join(lines) + "\n"
