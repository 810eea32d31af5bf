"""The bar schema: the one OHLCV shape every module of the project exchanges.

A bar frame is a :class:`pandas.DataFrame` with

* a tz-aware UTC :class:`pandas.DatetimeIndex` named ``ts`` (unit ``ns``) holding the START of
  each bar's interval, and
* float64 columns ``open``, ``high``, ``low``, ``close``, ``volume`` in that order.

:func:`normalize_bars` coerces a frame to that shape but never drops or sorts rows; reporting
duplicates, disorder or bad prices is :func:`quant_pipelines.marketdata.validate_bars`'s job.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Column names of a bar frame, in order."""

INDEX_NAME = "ts"
"""Name of a bar frame's index."""

TS_DTYPE = "datetime64[ns, UTC]"
"""Dtype of a bar frame's index."""


class BarSchemaError(ValueError):
    """A frame cannot be coerced to the bar schema."""


def empty_bars() -> pd.DataFrame:
    """Return an empty frame in the bar schema.

    Returns:
        A zero-row frame with a UTC ``ts`` index and the float64 columns of :data:`BAR_COLUMNS`.
    """
    index = pd.DatetimeIndex([], dtype=TS_DTYPE, name=INDEX_NAME)
    return pd.DataFrame({c: np.empty(0, dtype="float64") for c in BAR_COLUMNS}, index=index)


def make_bars(index: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    """Build a bar frame from an index and an ``(n, 5)`` array, without any checks.

    Args:
        index: UTC timestamps, one per row.
        values: Array of shape ``(len(index), 5)`` in :data:`BAR_COLUMNS` order.

    Returns:
        A frame in the bar schema.
    """
    idx = pd.DatetimeIndex(index).as_unit("ns").rename(INDEX_NAME)
    data = np.asarray(values, dtype="float64")
    return pd.DataFrame({c: data[:, i] for i, c in enumerate(BAR_COLUMNS)}, index=idx)


def _coerce_index(df: pd.DataFrame) -> pd.DatetimeIndex:
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        if INDEX_NAME in df.columns:
            index = pd.DatetimeIndex(df[INDEX_NAME]) if _is_datetime(df[INDEX_NAME]) else None
        else:
            index = None
    if index is None:
        raise BarSchemaError(
            "bars need a DatetimeIndex (or a datetime 'ts' column); "
            f"got index of type {type(df.index).__name__}"
        )
    if index.tz is None:
        raise BarSchemaError(
            "bar timestamps are tz-naive; localize them first (bars are UTC, "
            "e.g. df.index = df.index.tz_localize('UTC'))"
        )
    if index.hasnans:
        bad = np.flatnonzero(index.isna())[:5].tolist()
        raise BarSchemaError(f"bar timestamps contain NaT at row positions {bad}")
    return index.tz_convert("UTC").as_unit("ns").rename(INDEX_NAME)


def _is_datetime(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series)


def _column_map(df: pd.DataFrame) -> dict[str, object]:
    found: dict[str, object] = {}
    for col in df.columns:
        key = str(col).strip().lower()
        if key in BAR_COLUMNS:
            if key in found:
                raise BarSchemaError(f"columns {found[key]!r} and {col!r} both map to {key!r}")
            found[key] = col
    missing = [c for c in BAR_COLUMNS if c not in found]
    if missing:
        raise BarSchemaError(
            f"bars are missing column(s) {missing}; need {list(BAR_COLUMNS)}, "
            f"got {[str(c) for c in df.columns]}"
        )
    return found


def normalize_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce a frame to the bar schema.

    Column names are matched case-insensitively and extra columns are dropped. Values are cast
    to float64 and the index is converted to UTC (unit ``ns``) and named ``ts``. A datetime
    ``ts`` column is used as the index when the frame has no DatetimeIndex. Rows are neither
    dropped nor reordered.

    Args:
        df: Frame with OHLCV columns and tz-aware timestamps.

    Returns:
        A new frame in the bar schema.

    Raises:
        BarSchemaError: If a column is missing or non-numeric, or the timestamps are missing,
            tz-naive or contain NaT.
    """
    if not isinstance(df, pd.DataFrame):
        raise BarSchemaError(f"bars must be a pandas DataFrame, got {type(df).__name__}")
    index = _coerce_index(df)
    columns = _column_map(df)
    data: dict[str, np.ndarray] = {}
    for name, col in columns.items():
        series = df[col]
        try:
            data[name] = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64")
        except (ValueError, TypeError) as exc:
            coerced = pd.to_numeric(series, errors="coerce")
            bad = np.flatnonzero(coerced.isna().to_numpy() & series.notna().to_numpy())
            where = f" at {index[bad[0]]} (row position {bad[0]}): {series.iloc[bad[0]]!r}"
            raise BarSchemaError(
                f"column {name!r} is not numeric{where if len(bad) else ''}"
            ) from exc
    return pd.DataFrame({c: data[c] for c in BAR_COLUMNS}, index=index)
