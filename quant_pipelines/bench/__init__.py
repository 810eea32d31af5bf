"""Benchmarks run by ``make bench``: each figure is a ratio to a reference measured in the same run.

Each area has a module here exposing ``run(*, quick: bool = False) -> list[Figure]``.
"""

from __future__ import annotations

from quant_pipelines.bench._report import Figure, render_markdown, timed

__all__ = ["Figure", "render_markdown", "timed"]
