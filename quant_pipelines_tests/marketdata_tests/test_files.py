"""FileSource: CSV/Parquet spellings, timezone handling and precise errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata import (
    BAR_COLUMNS,
    FileSource,
    FileSourceError,
    load_universe,
    validate_bars,
)

YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,10,12,9,11,5.5,100
2024-01-03,11,13,10,12,6.0,200
2024-01-04,12,14,11,13,6.5,300
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_yahoo_csv_uses_close_not_adj_close(tmp_path: Path) -> None:
    _write(tmp_path, "AAPL.csv", YAHOO)
    bars = FileSource(tmp_path).bars("AAPL", "2024-01-01", "2024-12-31")
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert (bars.dtypes == np.float64).all()
    assert bars["close"].tolist() == [11.0, 12.0, 13.0]
    assert bars.index[0] == pd.Timestamp("2024-01-02", tz="UTC")  # naive dates read as UTC
    assert bars.index.name == "ts" and str(bars.index.tz) == "UTC"


@pytest.mark.parametrize(
    ("header", "close"),
    [
        ("timestamp,open,high,low,adj_close,volume", 11.0),
        ("TS,OPEN,HIGH,LOW,ADJ CLOSE,VOLUME", 11.0),
        ("Datetime,Open,High,Low,Close,Volume", 11.0),
        ("time,Open,High,Low,close,volume", 11.0),
    ],
)
def test_column_spellings(tmp_path: Path, header: str, close: float) -> None:
    _write(tmp_path, "x.csv", f"{header}\n2024-01-02 14:30,10,12,9,{close},100\n")
    bars = FileSource(tmp_path).bars("X", "2024-01-02", "2024-01-02")
    assert bars.iloc[0].tolist() == [10.0, 12.0, 9.0, close, 100.0]
    assert bars.index[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")


def test_tz_aware_timestamps_are_converted_to_utc(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "SPY.csv",
        "Datetime,Open,High,Low,Close,Volume\n"
        "2024-01-02T09:30:00-05:00,1,2,0.5,1.5,10\n"
        "2024-01-03T09:30:00-05:00,1,2,0.5,1.5,10\n",
    )
    bars = FileSource(tmp_path).bars("spy", "2024-01-02", "2024-01-03")
    assert list(bars.index) == list(
        pd.to_datetime(["2024-01-02 14:30", "2024-01-03 14:30"], utc=True)
    )


def test_parquet_with_index_and_with_column(tmp_path: Path) -> None:
    index = pd.DatetimeIndex(["2024-01-02 14:30", "2024-01-03 14:30"], tz="UTC", name="ts").as_unit(
        "ns"
    )
    frame = pd.DataFrame({c: [1.0, 2.0] for c in BAR_COLUMNS}, index=index)
    frame.to_parquet(tmp_path / "BTCUSD.parquet")
    frame.reset_index().rename(columns={"ts": "Time", "close": "Close"}).assign(
        Time=lambda d: d["Time"].dt.tz_localize(None)
    ).to_parquet(tmp_path / "ethusd.PARQUET")
    source = FileSource(tmp_path)
    pd.testing.assert_frame_equal(source.bars("BTCUSD", "2024-01-01", "2024-01-31"), frame)
    pd.testing.assert_frame_equal(source.bars("ETHUSD", "2024-01-01", "2024-01-31"), frame)
    assert source.symbols() == ["BTCUSD", "ethusd"]


def test_date_range_is_inclusive_and_rows_keep_file_order(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "A.csv",
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-04,1,1,1,1,1\n2024-01-02,2,2,2,2,2\n2024-01-03,3,3,3,3,3\n"
        "2024-01-03,3,3,3,3,3\n2024-01-05,5,5,5,5,5\n",
    )
    bars = FileSource(tmp_path).bars("A", "2024-01-03", pd.Timestamp("2024-01-04"))
    assert bars["open"].tolist() == [1.0, 3.0, 3.0]
    rules = {i.rule for i in validate_bars(bars)}
    assert rules == {"unsorted_ts", "duplicate_bar"}


def test_empty_cells_become_nan_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "A.csv",
        "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1,\n\n2024-01-03,1,2,0.5,1,NA\n",
    )
    bars = FileSource(tmp_path).bars("A", "2024-01-01", "2024-01-31")
    assert len(bars) == 2 and bars["volume"].isna().all()


def test_universe_moves_date_only_rows_to_the_session_open(tmp_path: Path) -> None:
    _write(tmp_path, "AAPL.csv", YAHOO)
    source = FileSource(tmp_path, universe=load_universe())
    bars = source.bars("AAPL", "2024-01-01", "2024-01-31")
    assert bars.index[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")
    assert validate_bars(bars, calendar="XNYS") == []


def test_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    path = _write(tmp_path, "A.csv", "Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,1\n")
    source = FileSource(tmp_path)
    assert source.bars("A", "2024-01-01", "2024-01-31")["close"].tolist() == [1.0]
    path.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,22,1\n")
    assert source.bars("A", "2024-01-01", "2024-01-31")["close"].tolist() == [22.0]


BAD_CSV = [
    ("Date,Open,High,Low,Volume\n2024-01-02,1,1,1,1\n", 1, "close", "missing column"),
    ("Date,Open,High,Low,Close\n2024-01-02,1,1,1,1\n", 1, "volume", "missing column"),
    ("Open,High,Low,Close,Volume\n1,1,1,1,1\n", 1, "ts", "missing column"),
    (
        "Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,1\n2024-01-03,1,1,1,abc,1\n",
        3,
        "Close",
        "non-numeric",
    ),
    (
        "Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,1\n\n2024-01-04,x,1,1,1,1\n",
        4,
        "Open",
        "non-numeric",
    ),
    (
        "Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,1\nnot-a-date,1,1,1,1,1\n",
        3,
        "Date",
        "unparsable date",
    ),
    (
        "Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,1\n,1,1,1,1,1\n",
        3,
        "Date",
        "unparsable date",
    ),
]


@pytest.mark.parametrize(("text", "row", "column", "what"), BAD_CSV)
def test_malformed_csv_names_file_row_and_column(
    tmp_path: Path, text: str, row: int, column: str, what: str
) -> None:
    path = _write(tmp_path, "BAD.csv", text)
    with pytest.raises(FileSourceError) as info:
        FileSource(tmp_path).bars("BAD", "2024-01-01", "2024-12-31")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.file, err.row, err.column) == (str(path), row, column)
    message = str(err)
    assert str(path) in message and f"row {row}" in message and repr(column) in message
    assert what in message


def test_malformed_parquet_names_the_data_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": ["2024-01-02", "2024-01-03", "2024-01-04"],
            "open": ["1", "2", "oops"],
            **{c: [1.0, 1.0, 1.0] for c in ("high", "low", "close", "volume")},
        }
    )
    frame.to_parquet(tmp_path / "P.parquet")
    with pytest.raises(FileSourceError, match=r"P\.parquet: row 3, column 'open': non-numeric"):
        FileSource(tmp_path).bars("P", "2024-01-01", "2024-12-31")


def test_missing_symbol_names_directory_and_symbol(tmp_path: Path) -> None:
    _write(tmp_path, "AAPL.csv", YAHOO)
    with pytest.raises(FileSourceError) as info:
        FileSource(tmp_path).bars("MSFT", "2024-01-01", "2024-12-31")
    assert str(tmp_path) in str(info.value) and "'MSFT'" in str(info.value)
    assert "AAPL" in str(info.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileSourceError, match="does not exist"):
        FileSource(tmp_path / "nope").symbols()
