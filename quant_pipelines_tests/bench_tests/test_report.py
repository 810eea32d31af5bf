"""The benchmark report: figures grouped by area, and the modules' notes after the tables."""

from __future__ import annotations

from quant_pipelines.bench._report import Figure, render_markdown

_FIGURE = Figure("optimizer", "2 workers", 150.0, "trials/h", "1 worker", 100.0, goal=1.6)


def test_notes_follow_the_tables_one_line_per_module() -> None:
    text = render_markdown([_FIGURE], header="# B", notes={"scaleout": "pays when slow"})
    tables, notes = text.split("\n## Notes\n")
    assert (
        "| 2 workers | 150 trials/h | 1 worker | 100 trials/h | 1.500 | ≥ 1.6 | **no** |" in tables
    )
    assert notes.strip() == "- **scaleout**: pays when slow"


def test_without_notes_the_report_has_no_notes_section() -> None:
    assert "Notes" not in render_markdown([_FIGURE], header="# B")
    assert render_markdown([_FIGURE], notes={}) == render_markdown([_FIGURE])
