"""The bar schema: shape of empty frames and coercion by normalize_bars."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata import BAR_COLUMNS, BarSchemaError, empty_bars, normalize_bars


def _assert_schema(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(BAR_COLUMNS)
    assert all(df[c].dtype == np.float64 for c in BAR_COLUMNS)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC"
    assert df.index.name == "ts"


def test_empty_bars_has_the_schema() -> None:
    df = empty_bars()
    _assert_schema(df)
    assert len(df) == 0


def test_normalize_coerces_types_order_case_and_timezone() -> None:
    index = pd.DatetimeIndex(["2024-01-02 09:30", "2024-01-03 09:30"], tz="America/New_York")
    raw = pd.DataFrame(
        {
            "Volume": [10, 20],
            "Close": ["2.5", "3"],
            "Low": [1, 2],
            "High": [3, 4],
            "Open": [2, 3],
            "extra": ["x", "y"],
        },
        index=index,
    )
    df = normalize_bars(raw)
    _assert_schema(df)
    assert df.index[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")
    assert df["close"].tolist() == [2.5, 3.0]
    assert "extra" not in df.columns


def test_normalize_uses_a_ts_column_and_keeps_rows_unsorted_and_duplicated() -> None:
    ts = pd.to_datetime(["2024-01-03", "2024-01-02", "2024-01-02"], utc=True)
    raw = pd.DataFrame({"ts": ts, **{c: [1.0, 2.0, 3.0] for c in BAR_COLUMNS}})
    df = normalize_bars(raw)
    _assert_schema(df)
    assert list(df.index) == list(ts)
    assert df["open"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda df: df.drop(columns="volume"), "missing column(s) ['volume']"),
        (lambda df: df.tz_localize(None), "tz-naive"),
        (lambda df: df.reset_index(drop=True), "DatetimeIndex"),
        (lambda df: df.assign(close=["a", "1", "2"]), "column 'close' is not numeric"),
        (lambda df: df.set_axis(pd.DatetimeIndex([None, *df.index[1:]])), "NaT"),
    ],
    ids=["missing-column", "naive-index", "no-datetime-index", "non-numeric", "nat"],
)
def test_normalize_rejects_bad_frames(mutate, fragment: str) -> None:
    good = pd.DataFrame(
        {c: [1.0, 2.0, 3.0] for c in BAR_COLUMNS},
        index=pd.date_range("2024-01-01", periods=3, tz="UTC"),
    )
    with pytest.raises(BarSchemaError, match=re.escape(fragment)):
        normalize_bars(mutate(good))


def test_normalize_rejects_non_frames() -> None:
    with pytest.raises(BarSchemaError, match="DataFrame"):
        normalize_bars([1, 2, 3])  # type: ignore[arg-type]
