"""The one UTC helper: every time value to tz-aware UTC, naive read as UTC (or local time)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from quant_pipelines._utils.time import utc, utc_now, utc_timestamp

NOON = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 3, 1, 12, 0),  # naive: UTC
        dt.datetime(2024, 3, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        pd.Timestamp("2024-03-01 07:00", tz="America/New_York"),
        "2024-03-01T12:00:00",
        "2024-03-01T12:00:00+00:00",
        np.datetime64("2024-03-01T12:00"),
    ],
)
def test_every_time_value_becomes_the_same_utc_instant(value: object) -> None:
    got = utc(value)
    assert type(got) is dt.datetime
    assert got == NOON and got.utcoffset() == dt.timedelta(0)
    stamp = utc_timestamp(value)
    assert isinstance(stamp, pd.Timestamp) and str(stamp.tz) == "UTC" and stamp == NOON


def test_naive_local_times_are_converted_from_the_local_zone() -> None:
    naive = dt.datetime(2024, 3, 1, 12, 0)
    assert utc(naive, naive_is_local=True) == naive.astimezone(dt.UTC)
    assert utc_timestamp(naive, naive_is_local=True) == naive.astimezone(dt.UTC)


@pytest.mark.parametrize("value", [None, 3, 1.5, True])
def test_numbers_and_none_are_not_times(value: object) -> None:
    with pytest.raises(TypeError):
        utc(value)


def test_nat_is_refused() -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        utc_timestamp(pd.NaT)


def test_now_is_utc_and_whole_milliseconds_like_mongodb() -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=1)
    now = utc_now()
    assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)
    assert now.microsecond % 1000 == 0
    assert before <= now <= dt.datetime.now(dt.UTC)
