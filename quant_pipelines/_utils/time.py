"""Timestamps as timezone-aware UTC: the one place that reads naive times.

Storage keeps every timestamp as timezone-aware UTC and MongoDB keeps milliseconds; these are
the conversions every layer uses to get there.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["utc", "utc_now", "utc_timestamp"]


def utc_timestamp(value: object, *, naive_is_local: bool = False) -> pd.Timestamp:
    """A pandas Timestamp in UTC.

    Args:
        value: A datetime, date, pandas Timestamp, numpy datetime64 or ISO string.
        naive_is_local: Read a naive value as this machine's local time (Optuna's datetimes)
            instead of UTC.

    Returns:
        The instant, tz-aware in UTC.

    Raises:
        TypeError: If ``value`` is None or a number (not a time).
        ValueError: If ``value`` is not a time pandas can parse, or is NaT.
    """
    if value is None or isinstance(value, bool | int | float):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    import pandas as pd  # here, so that callers with plain datetimes never import pandas

    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"not a timestamp: {value!r}")
    if ts.tzinfo is not None:
        return ts.tz_convert("UTC")
    if naive_is_local:
        return pd.Timestamp(ts.to_pydatetime().astimezone(dt.UTC))
    return ts.tz_localize("UTC")


def utc(value: object, *, naive_is_local: bool = False) -> dt.datetime:
    """A timezone-aware UTC ``datetime`` (what pymongo stores), from any time value.

    Args:
        value: As for :func:`utc_timestamp`.
        naive_is_local: As for :func:`utc_timestamp`.

    Returns:
        The instant as a ``datetime`` with ``tzinfo=UTC`` (nanoseconds dropped).

    Raises:
        TypeError: If ``value`` is None or a number.
        ValueError: If ``value`` is not a time.
    """
    if type(value) is dt.datetime:  # the common case, without a detour through pandas
        if value.tzinfo is None and not naive_is_local:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    ts = utc_timestamp(value, naive_is_local=naive_is_local)
    return ts.as_unit("us").to_pydatetime()


def utc_now() -> dt.datetime:
    """Now, in UTC, truncated to milliseconds: the value MongoDB stores and returns."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
