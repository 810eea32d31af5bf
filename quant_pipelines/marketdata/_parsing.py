"""Column matching and cell parsing for :mod:`quant_pipelines.marketdata.files`."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Accepted spellings after normalisation (lower case, no spaces, underscores or hyphens),
# in order of preference.
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "datetime", "date", "time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "adjclose", "adjustedclose"),
    "volume": ("volume",),
}
SPELLINGS: dict[str, str] = {
    "ts": "Date, Datetime, Timestamp, ts, time",
    "open": "Open",
    "high": "High",
    "low": "Low",
    "close": "Close (or Adj Close as a fallback)",
    "volume": "Volume",
}
NA_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})


class FileSourceError(ValueError):
    """A market-data file is missing or malformed.

    Attributes:
        file: The offending file (or directory, for a missing symbol).
        row: Row of the problem: in a CSV the 1-based line number (header = line 1, first data
            row = line 2); in Parquet the 1-based data row. ``None`` when not about a row.
        column: Offending column as spelled in the file, or the schema name when missing.
    """

    def __init__(
        self, message: str, *, file: str, row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.file = file
        self.row = row
        self.column = column


def _key(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).strip().lower())


def match_columns(columns: list[object], *, file: str, header_row: int | None) -> dict[str, object]:
    """Map each schema field to the file's column.

    Args:
        columns: Column names as read.
        file: File name for error messages.
        header_row: Row of the header in the file's numbering (None for Parquet).

    Returns:
        ``{field: column}`` for ``ts`` and every OHLCV field.

    Raises:
        FileSourceError: If a field has no matching column.
    """
    by_key: dict[str, object] = {}
    for col in columns:
        by_key.setdefault(_key(col), col)
    found: dict[str, object] = {}
    for field, aliases in ALIASES.items():
        match = next((by_key[a] for a in aliases if a in by_key), None)
        if match is None:
            where = f"row {header_row} (header)" if header_row else "header"
            raise FileSourceError(
                f"{file}: {where}, column {field!r}: missing column "
                f"(accepted spellings, any case: {SPELLINGS[field]}); "
                f"found columns {[str(c) for c in columns]}",
                file=file,
                row=header_row,
                column=field,
            )
        found[field] = match
    return found


def parse_numbers(
    series: pd.Series, *, file: str, column: object, row_numbers: np.ndarray
) -> np.ndarray:
    """Parse a price or volume column to float64 (NA tokens become NaN).

    Args:
        series: The raw column.
        file: File name for error messages.
        column: Column name as spelled in the file.
        row_numbers: Row number of each entry in the file's numbering.

    Returns:
        float64 values.

    Raises:
        FileSourceError: At the first entry that is neither a number nor an NA token.
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    text = series.astype("string").str.strip()
    is_na = text.isna() | text.str.lower().isin(NA_TOKENS)
    values = pd.to_numeric(text.str.replace(",", "", regex=False).mask(is_na), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & ~is_na.to_numpy())
    if bad.size:
        i = bad[0]
        raise FileSourceError(
            f"{file}: row {row_numbers[i]}, column {column!r}: non-numeric value "
            f"{series.iloc[i]!r}",
            file=file,
            row=int(row_numbers[i]),
            column=str(column),
        )
    return values.to_numpy(dtype="float64", na_value=np.nan)


def parse_times(
    series: pd.Series, *, file: str, column: object, row_numbers: np.ndarray
) -> pd.DatetimeIndex:
    """Parse timestamps to UTC: naive values are read as UTC, tz-aware ones converted.

    Args:
        series: The raw column (strings or datetimes).
        file: File name for error messages.
        column: Column name as spelled in the file.
        row_numbers: Row number of each entry in the file's numbering.

    Returns:
        UTC DatetimeIndex (unit ``ns``) named ``ts``.

    Raises:
        FileSourceError: At the first empty or unparsable timestamp.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series):
        parsed = pd.to_datetime(series, utc=True)
    else:
        text = series.astype("string").str.strip()
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        retry = parsed.isna() & text.notna() & (text != "")
        if retry.any():
            parsed[retry] = pd.to_datetime(text[retry], utc=True, format="mixed", errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise FileSourceError(
            f"{file}: row {row_numbers[i]}, column {column!r}: unparsable date {series.iloc[i]!r}",
            file=file,
            row=int(row_numbers[i]),
            column=str(column),
        )
    return pd.DatetimeIndex(parsed).as_unit("ns").rename("ts")
