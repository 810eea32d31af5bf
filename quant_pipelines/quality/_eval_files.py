"""Reading real bars for ``quant-pipelines quality evaluate --source DIR`` (the FileSource).

Private helper of the CLI: the harness itself (:func:`~quant_pipelines.quality.harness.
run_real_evaluation`) stays pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from quant_pipelines.marketdata import FileSource, load_universe
from quant_pipelines.marketdata.universe import Symbol, Universe

FAR_PAST = "1900-01-01"
"""Start date used when none is given (every bar of the file)."""

FAR_FUTURE = "2100-12-31"
"""End date used when none is given."""


def file_symbols(
    directory: str | Path, names: Sequence[str] | None = None, *, calendar: str | None = None
) -> Universe:
    """The symbols to evaluate, with their calendars.

    A symbol of the default universe keeps its calendar (XNYS for its equities); any other
    symbol is taken as an equity, on ``calendar`` when given (XNYS otherwise).

    Args:
        directory: Directory of ``<SYMBOL>.csv`` / ``.parquet`` files.
        names: Symbols (default: every file of the directory).
        calendar: Calendar overriding the default for every symbol.

    Returns:
        A universe of the symbols, in the order given.
    """
    known = load_universe()
    picked = list(names) if names else FileSource(directory).symbols()
    symbols = []
    for name in picked:
        if name in known:
            sym = known.get(name)
            symbols.append(Symbol(name, sym.asset_class, calendar or sym.calendar))
        else:
            symbols.append(Symbol(name, "equity", calendar or ""))
    return Universe(symbols)


def read_file_bars(
    directory: str | Path,
    universe: Universe,
    *,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Bars per symbol from the files, date-only timestamps moved to session opens.

    Args:
        directory: Directory of ``<SYMBOL>.csv`` / ``.parquet`` files.
        universe: The symbols (from :func:`file_symbols`).
        start: First date (default: the file's first bar).
        end: Last date (default: the file's last bar).

    Returns:
        Bars per symbol, in the universe's order.

    Raises:
        FileSourceError: If a file is missing or malformed.
    """
    source = FileSource(directory, universe=universe)
    return {
        sym.name: source.bars(sym.name, start or FAR_PAST, end or FAR_FUTURE) for sym in universe
    }
