"""Synthetic bars: determinism, slice consistency, OHLC sanity, sessions and realism."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.marketdata import (
    BAR_COLUMNS,
    Symbol,
    SyntheticSource,
    Universe,
    bar_times,
    load_universe,
)

NAMES = [s.name for s in load_universe()]
LONG = ("2005-01-01", "2024-12-31")


def test_same_seed_gives_identical_bars_and_another_seed_differs() -> None:
    a = SyntheticSource(7).bars("AAPL", "2024-01-01", "2024-03-31")
    b = SyntheticSource(7).bars("AAPL", "2024-01-01", "2024-03-31")
    c = SyntheticSource(8).bars("AAPL", "2024-01-01", "2024-03-31")
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


def test_symbols_get_different_paths(source: SyntheticSource) -> None:
    a = source.bars("MSFT", "2024-01-01", "2024-03-31")["close"].pct_change().dropna()
    b = source.bars("AAPL", "2024-01-01", "2024-03-31")["close"].pct_change().dropna()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.5


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    first=st.integers(0, 2000),
    cut=st.integers(0, 400),
    length=st.integers(0, 400),
)
def test_a_range_sliced_equals_the_sub_range(name: str, first: int, cut: int, length: int) -> None:
    source = SyntheticSource(1)
    a = pd.Timestamp("2018-01-01") + pd.Timedelta(days=first)
    b = a + pd.Timedelta(days=cut)
    c = b + pd.Timedelta(days=length)
    whole = source.bars(name, a.date(), c.strftime("%Y-%m-%d"))
    part = source.bars(name, b, c)
    sliced = whole[whole.index.tz_convert(None).normalize() >= b]
    pd.testing.assert_frame_equal(sliced, part)
    regimes = source.regimes(name, b, c)
    assert regimes.index.equals(part.index)


def test_day_by_day_ingestion_matches_a_range() -> None:
    source = SyntheticSource(2, freq="1h")
    days = pd.date_range("2023-12-27", "2024-01-03")
    pieces = pd.concat([source.bars("ETHUSD", d, d) for d in days])
    pd.testing.assert_frame_equal(pieces, source.bars("ETHUSD", days[0], days[-1]))


@pytest.mark.parametrize("name", NAMES)
def test_ohlc_consistency_and_expected_timestamps(source: SyntheticSource, name: str) -> None:
    bars = source.bars(name, *LONG)
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert (bars.dtypes == np.float64).all()
    assert str(bars.index.tz) == "UTC" and bars.index.name == "ts"
    values = bars.to_numpy()
    assert np.isfinite(values).all() and (values > 0).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    expected = bar_times(source.universe.get(name).calendar, *LONG)
    assert bars.index.equals(expected)


@pytest.mark.parametrize(
    ("name", "day", "has_bar"),
    [
        ("AAPL", "2024-07-04", False),
        ("AAPL", "2024-07-06", False),
        ("EURUSD", "2024-07-06", False),
        ("EURUSD", "2024-07-04", True),
        ("BTCUSD", "2024-07-06", True),
        ("BTCUSD", "2024-07-07", True),
    ],
)
def test_sessions_of_each_asset_class(
    source: SyntheticSource, name: str, day: str, has_bar: bool
) -> None:
    assert (len(source.bars(name, day, day)) == 1) is has_bar


def test_daily_equity_bar_sits_at_the_xnys_open(source: SyntheticSource) -> None:
    assert source.bars("SPY", "2024-01-02", "2024-01-02").index[0] == pd.Timestamp(
        "2024-01-02 14:30", tz="UTC"
    )


def test_regimes_align_with_bars_and_cover_all_trends(source: SyntheticSource) -> None:
    for name in ("SPY", "EURUSD", "BTCUSD"):
        bars = source.bars(name, "2015-01-01", "2024-12-31")
        regimes = source.regimes(name, "2015-01-01", "2024-12-31")
        assert regimes.index.equals(bars.index)
        assert set(regimes["trend"]) == {"up", "down", "range"}
        assert set(regimes["volatility"]) == {"calm", "turbulent"}
        assert (regimes["label"] == regimes["trend"] + "_" + regimes["volatility"]).all()
        assert regimes["trend"].ne(regimes["trend"].shift()).sum() > 20  # it switches


def test_regimes_drive_drift_and_volatility(source: SyntheticSource) -> None:
    rets, trends, vols = [], [], []
    for name in NAMES:
        bars = source.bars(name, *LONG)
        regimes = source.regimes(name, *LONG)
        sigma0 = source.universe.get(name).annual_vol
        rets.append(np.log(bars["close"]).diff().to_numpy()[1:] / sigma0)
        trends.append(regimes["trend"].to_numpy()[1:])
        vols.append(regimes["volatility"].to_numpy()[1:])
    r, trend, vol = np.concatenate(rets), np.concatenate(trends), np.concatenate(vols)
    assert r[trend == "up"].mean() > r[trend == "range"].mean() > r[trend == "down"].mean()
    assert r[vol == "turbulent"].std() > 1.5 * r[vol == "calm"].std()


@pytest.mark.parametrize("name", NAMES)
def test_volume_rises_with_volatility(source: SyntheticSource, name: str) -> None:
    bars = source.bars(name, *LONG)
    abs_ret = np.log(bars["close"]).diff().abs()
    realised = abs_ret.rolling(20).mean()
    volume = np.log(bars["volume"]).rolling(20).mean()
    assert realised.corr(volume) > 0.5
    assert abs_ret.corr(np.log(bars["volume"])) > 0.3


def _annual_vol(bars: pd.DataFrame, periods: int) -> float:
    return float(np.log(bars["close"]).diff().std() * np.sqrt(periods))


def test_crypto_is_more_volatile_than_equities_and_fx_less(source: SyntheticSource) -> None:
    def mean_vol(asset_class: str, periods: int) -> float:
        names = [s.name for s in source.universe.by_asset_class(asset_class)]
        return float(np.mean([_annual_vol(source.bars(n, *LONG), periods) for n in names]))

    crypto, equity, fx = mean_vol("crypto", 365), mean_vol("equity", 252), mean_vol("fx", 260)
    assert crypto > equity > fx
    for name in NAMES:  # realised vol within 35% of the symbol's target
        sym = source.universe.get(name)
        periods = {"equity": 252, "fx": 260, "crypto": 365}[sym.asset_class]
        assert _annual_vol(source.bars(name, *LONG), periods) == pytest.approx(
            sym.annual_vol, rel=0.35
        )


def test_equities_gap_overnight_and_crypto_opens_at_the_previous_close(
    source: SyntheticSource,
) -> None:
    eq = source.bars("AAPL", "2020-01-01", "2024-12-31")
    gaps = np.log(eq["open"] / eq["close"].shift()).dropna()
    assert (gaps.abs() > 1e-4).mean() > 0.9
    btc = source.bars("BTCUSD", "2020-01-01", "2024-12-31")
    np.testing.assert_allclose(btc["open"].to_numpy()[1:], btc["close"].to_numpy()[:-1])


def test_intraday_bars_share_the_daily_open_and_close() -> None:
    daily = SyntheticSource(5).bars("MSFT", "2024-07-01", "2024-07-10")
    hourly = SyntheticSource(5, freq="1h").bars("MSFT", "2024-07-01", "2024-07-10")
    assert hourly.index.equals(bar_times("XNYS", "2024-07-01", "2024-07-10", freq="1h"))
    session = hourly.index.tz_convert(None).normalize()
    grouped = hourly.groupby(session)
    np.testing.assert_allclose(grouped["open"].first().to_numpy(), daily["open"].to_numpy())
    np.testing.assert_allclose(grouped["close"].last().to_numpy(), daily["close"].to_numpy())
    np.testing.assert_allclose(grouped["volume"].sum().to_numpy(), daily["volume"].to_numpy())
    assert (hourly["high"] >= hourly[["open", "close"]].max(axis=1)).all()
    regimes = SyntheticSource(5, freq="1h").regimes("MSFT", "2024-07-01", "2024-07-10")
    assert regimes.index.equals(hourly.index)


def test_intraday_slice_across_a_year_boundary() -> None:
    source = SyntheticSource(0, freq="4h")
    whole = source.bars("BTCUSD", "2023-12-30", "2024-01-02")
    part = source.bars("BTCUSD", "2024-01-01", "2024-01-02")
    pd.testing.assert_frame_equal(whole.loc["2024-01-01":], part)
    assert len(whole) == 4 * 6


def test_outside_the_path_span_returns_only_what_exists(source: SyntheticSource) -> None:
    assert len(source.bars("AAPL", "1995-01-01", "1999-12-31")) == 0
    bars = source.bars("AAPL", "1999-12-01", "2000-01-05")
    assert bars.index[0] == pd.Timestamp("2000-01-03 14:30", tz="UTC")
    assert bars["open"].iloc[0] == pytest.approx(source.universe.get("AAPL").start_price, rel=0.1)


def test_full_daily_path_is_generated_fast() -> None:
    sym = Symbol("FASTTEST", "equity")
    source = SyntheticSource(123, universe=Universe([sym]))
    source.bars(sym.name, "2024-01-02", "2024-01-02")  # the calendar may need building
    fresh = SyntheticSource(124, universe=Universe([sym]))
    started = time.perf_counter()
    bars = fresh.bars(sym.name, "2000-01-01", "2030-12-31")
    assert len(bars) > 7_000
    assert time.perf_counter() - started < 0.25


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        SyntheticSource(seed)  # type: ignore[arg-type]


def test_unknown_symbol_raises_key_error(source: SyntheticSource) -> None:
    with pytest.raises(KeyError, match="known symbols"):
        source.bars("NOPE", "2024-01-01", "2024-01-31")
