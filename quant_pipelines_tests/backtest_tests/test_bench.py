"""Smoke test of the backtest benchmark module (quick sizes)."""

from __future__ import annotations

import math

from quant_pipelines.bench import Figure
from quant_pipelines.bench.backtest import run


def test_quick_benchmark_runs() -> None:
    figures = run(quick=True)
    assert figures and all(isinstance(f, Figure) and f.area == "backtest" for f in figures)
    assert all(math.isfinite(f.value) and f.value > 0 for f in figures)
    assert any(f.goal == 10.0 for f in figures)  # the sweep-vs-single figure
