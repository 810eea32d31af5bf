"""Runs every benchmark module and writes the markdown report."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import traceback
from pathlib import Path

from quant_pipelines.bench._report import Figure, render_markdown

#: Benchmark modules in report order; each exposes ``run(*, quick) -> list[Figure]`` and may
#: set ``NOTES`` (a string: how to read its figures, rendered after the tables).
MODULES = (
    "storage",
    "api",
    "console",
    "backtest",
    "portfolio",
    "quality",
    "optimizer",
    "leaderboard",
    "scaleout",
    "rl",
    "dagster_ingest",
)


def run_benchmarks(*, quick: bool = False, output: str | None = "docs/benchmarks.md") -> int:
    """Runs all benchmarks, prints the table, and writes it to ``output``.

    Returns:
        0 when every module ran (goals missed are reported, not failed), else 1.
    """
    figures: list[Figure] = []
    notes: dict[str, str] = {}
    failed = []
    for name in MODULES:
        print(f"benchmark: {name} ...", flush=True)
        try:
            module = importlib.import_module(f"quant_pipelines.bench.{name}")
            figures.extend(module.run(quick=quick))
            if getattr(module, "NOTES", ""):
                notes[name] = module.NOTES
        except Exception:  # report the module and carry on with the others
            failed.append(name)
            traceback.print_exc()
    header = (
        "# Benchmarks\n\n"
        "Produced by `make bench`. Every figure is compared with a reference measured in the "
        "same run on the same machine; the ratio is figure/reference (for durations, "
        "reference/figure), so it does not depend on how fast the machine is.\n\n"
        f"Run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs{' (quick sizes)' if quick else ''}."
    )
    report = render_markdown(figures, header=header, notes=notes)
    print(report)
    if output:
        Path(output).write_text(report)
    return 1 if failed else 0
