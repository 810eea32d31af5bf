"""Bars from CSV or Parquet files, one file per symbol: ``<dir>/<SYMBOL>.csv`` or ``.parquet``.

Conventions:

* The file name is matched to the symbol case-insensitively; when both a CSV and a Parquet file
  exist for a symbol, the Parquet file wins.
* Column names are matched in any case, ignoring spaces, underscores and hyphens. The timestamp
  may be called Date, Datetime, Timestamp, ts or time (in that order of preference; a Parquet
  DatetimeIndex also works). ``Close`` is used when present; ``Adj Close`` only as a fallback
  when the file has no ``Close``. Open, High, Low and Volume are required.
* Naive timestamps are read as UTC; tz-aware ones are converted to UTC. With a ``universe``,
  date-only files (every timestamp at midnight) are moved to the session open of the symbol's
  calendar, matching the bar-timestamp convention (non-session dates stay at midnight).
* Empty cells and NA tokens (``nan``, ``NA``, ``null`` ...) become NaN; validation reports them.
  Rows are neither sorted nor de-duplicated (validation reports those too).
* Errors name the file, the row (CSV: 1-based line number, header = line 1; Parquet: 1-based
  data row) and the column.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from quant_pipelines.marketdata._parsing import (
    FileSourceError,
    match_columns,
    parse_numbers,
    parse_times,
)
from quant_pipelines.marketdata.calendars import DateLike, as_date, get_calendar, session_bounds
from quant_pipelines.marketdata.schema import BAR_COLUMNS, make_bars
from quant_pipelines.marketdata.universe import Universe

__all__ = ["FileSource", "FileSourceError"]

_SUFFIXES = {".parquet": 0, ".pq": 1, ".csv": 2}  # lower value wins


def _read_raw(path: Path) -> tuple[pd.DataFrame, np.ndarray, int | None]:
    """The raw table, the file row number of each record, and the header row (CSV only)."""
    try:
        if path.suffix.lower() == ".csv":
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
            rows = np.arange(len(raw)) + 2
            blank = (raw.apply(lambda s: s.str.strip()) == "").all(axis=1).to_numpy()
            return raw.loc[~blank].reset_index(drop=True), rows[~blank], 1
        raw = pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise FileSourceError(f"{path}: cannot be read: {exc}", file=str(path)) from exc
    if isinstance(raw.index, pd.DatetimeIndex):
        raw = raw.reset_index()
    return raw.reset_index(drop=True), np.arange(len(raw)) + 1, None


@lru_cache(maxsize=64)
def _load(path_str: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """Parse a whole file into bars (cached per file version)."""
    del mtime_ns, size  # cache key only
    path = Path(path_str)
    raw, row_numbers, header_row = _read_raw(path)
    columns = match_columns(list(raw.columns), file=path_str, header_row=header_row)
    index = parse_times(
        raw[columns["ts"]], file=path_str, column=columns["ts"], row_numbers=row_numbers
    )
    values = (
        np.column_stack(
            [
                parse_numbers(
                    raw[columns[f]], file=path_str, column=columns[f], row_numbers=row_numbers
                )
                for f in BAR_COLUMNS
            ]
        )
        if len(raw)
        else np.empty((0, len(BAR_COLUMNS)))
    )
    return make_bars(index, values)


class FileSource:
    """Bars read from a directory of per-symbol CSV or Parquet files.

    Args:
        path: The directory.
        universe: Optional universe; used to move date-only timestamps to session opens.
    """

    def __init__(self, path: str | Path, *, universe: Universe | None = None) -> None:
        self.path = Path(path)
        self.universe = universe

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r})"

    def _files(self) -> dict[str, Path]:
        if not self.path.is_dir():
            raise FileSourceError(
                f"market-data directory {str(self.path)!r} does not exist", file=str(self.path)
            )
        best: dict[str, Path] = {}
        for p in sorted(self.path.iterdir()):
            rank = _SUFFIXES.get(p.suffix.lower())
            if rank is None or not p.is_file():
                continue
            key = p.stem.lower()
            if key not in best or rank < _SUFFIXES[best[key].suffix.lower()]:
                best[key] = p
        return best

    def symbols(self) -> list[str]:
        """Symbols with a data file, spelled as in the file names, sorted.

        Raises:
            FileSourceError: If the directory does not exist.
        """
        return sorted(p.stem for p in self._files().values())

    def file_for(self, symbol: str) -> Path:
        """The data file of a symbol.

        Args:
            symbol: Symbol name (any case).

        Returns:
            Path of the CSV or Parquet file.

        Raises:
            FileSourceError: If no file exists for the symbol; names the directory.
        """
        files = self._files()
        found = files.get(symbol.lower())
        if found is None:
            raise FileSourceError(
                f"no data file for symbol {symbol!r} in directory {str(self.path)!r} "
                f"(expected {symbol}.csv or {symbol}.parquet); available: "
                f"{sorted(p.stem for p in files.values())}",
                file=str(self.path),
            )
        return found

    def read(self, symbol: str) -> pd.DataFrame:
        """Every bar of a symbol's file, in file order.

        Args:
            symbol: Symbol name (any case).

        Returns:
            Bars in the bar schema.

        Raises:
            FileSourceError: If the file is missing or malformed.
        """
        path = self.file_for(symbol)
        stat = path.stat()
        bars = _load(str(path), stat.st_mtime_ns, stat.st_size).copy()
        if self.universe is not None and symbol in self.universe:
            bars = self._to_session_open(bars, self.universe.get(symbol).calendar)
        return bars

    @staticmethod
    def _to_session_open(bars: pd.DataFrame, calendar: str) -> pd.DataFrame:
        index = bars.index
        if not len(index) or not (index == index.normalize()).all():
            return bars
        labels = index.tz_convert(None)
        cal = get_calendar(calendar)
        is_session = labels.isin(cal.sessions)
        opens, _ = session_bounds(cal, labels[is_session])
        moved = index.asi8.copy()
        moved[is_session] = opens.asi8
        bars.index = pd.DatetimeIndex(moved, tz="UTC", name="ts").as_unit("ns")
        return bars

    def bars(self, symbol: str, start: DateLike, end: DateLike) -> pd.DataFrame:
        """Bars whose UTC timestamp date lies in ``[start, end]`` (inclusive), in file order.

        Args:
            symbol: Symbol name (any case).
            start: First date.
            end: Last date.

        Returns:
            Bars in the bar schema.

        Raises:
            FileSourceError: If the file is missing or malformed.
        """
        bars = self.read(symbol)
        dates = bars.index.tz_convert(None).normalize()
        lo, hi = as_date(start), as_date(end)
        return bars.loc[(dates >= lo) & (dates <= hi)]
