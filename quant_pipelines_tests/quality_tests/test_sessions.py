"""Sessions as the exchange defines them: lengths, early closes, off-calendar bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata.calendars import (
    bar_session_positions,
    bar_times,
    get_calendar,
    session_fractions,
    session_lengths,
)
from quant_pipelines.quality import (
    build_features,
    check_rules,
    fit_schedule,
    period_starts,
    score_bars,
)
from quant_pipelines_tests._bars import goog_bars


@pytest.mark.parametrize(
    ("calendar", "first", "last", "hours"),
    [
        ("XNYS", "2024-11-27", "2024-11-29", [6.5, 3.5]),  # Thanksgiving, then an early close
        ("XNYS", "2024-07-03", "2024-07-05", [3.5, 6.5]),
        ("24/7", "2024-11-29", "2024-12-01", [24.0, 24.0, 24.0]),
        ("24/5", "2024-11-29", "2024-12-02", [24.0, 24.0]),  # Friday, Monday
    ],
)
def test_daily_session_lengths(calendar: str, first: str, last: str, hours: list[float]) -> None:
    times = bar_times(calendar, first, last)
    assert session_lengths(calendar, times).tolist() == hours
    assert np.allclose(session_fractions(calendar, times), np.array(hours) / max(hours))


def test_early_closes_come_from_the_calendar() -> None:
    cal = get_calendar("XNYS")
    early = pd.DatetimeIndex(cal.early_closes)
    early = early[(early >= "2004-01-01") & (early <= "2013-12-31")]
    times = bar_times("XNYS", "2004-01-01", "2013-12-31")
    fraction = session_fractions("XNYS", times)
    short = times[fraction < 1].tz_convert(None).normalize()
    assert short.equals(pd.DatetimeIndex(early).as_unit("ns").rename("ts"))
    assert np.allclose(fraction[fraction < 1], 3.5 / 6.5)


def test_intraday_bar_of_an_early_close_is_cut_at_the_close() -> None:
    times = bar_times("XNYS", "2024-11-29", "2024-11-29", freq="1h")  # 14:30 .. 17:30 UTC
    assert session_lengths("XNYS", times, freq="1h").tolist() == [1.0, 1.0, 1.0, 0.5]
    assert session_fractions("XNYS", times, freq="1h").tolist() == [1.0, 1.0, 1.0, 0.5]


def test_bars_stamped_at_midnight_of_the_session_date_belong_to_it() -> None:
    opens = bar_times("XNYS", "2024-11-26", "2024-11-29")
    midnight = opens.tz_convert(None).normalize().tz_localize("UTC")
    assert np.array_equal(
        bar_session_positions("XNYS", opens), bar_session_positions("XNYS", midnight)
    )
    assert np.diff(bar_session_positions("XNYS", opens)).tolist() == [1, 1]  # skips Thursday


def test_a_calendar_the_symbol_does_not_trade_is_a_clear_error(source) -> None:
    bars = source.bars("BTCUSD", "2024-01-01", "2024-01-31")  # 24/7: weekends included
    with pytest.raises(ValueError, match=r"'BTCUSD'.*'XNYS'"):
        score_bars(bars, calendar="XNYS", symbol="BTCUSD")
    with pytest.raises(ValueError, match="outside calendar 'XNYS'"):
        check_rules(bars, calendar="XNYS")
    assert len(check_rules(bars, calendar="crypto")) == len(bars)


def test_session_length_scales_volume_and_range() -> None:
    times = bar_times("XNYS", "2024-10-01", "2024-12-31")
    n = len(times)
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    bars = pd.DataFrame(
        {
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1e6 * np.exp(rng.normal(0, 0.1, n)),
        },
        index=times,
    )
    frac = session_fractions("XNYS", times)
    bars["volume"] *= frac  # a half-day trades a half-day's volume ...
    bars["high"] = bars["close"] * (1 + 0.01 * np.sqrt(frac))  # ... over a shorter range
    bars["low"] = bars["close"] * (1 - 0.01 * np.sqrt(frac))
    scaled = build_features(bars, calendar="XNYS")
    plain = build_features(bars)
    half = frac < 1
    assert half.sum() == 2  # 2024-11-29 and 2024-12-24
    assert np.allclose(scaled.loc[half, "session_fraction"], 3.5 / 6.5)
    assert np.allclose(scaled["range_z"].iloc[30:], 0.0, atol=1e-9)
    assert (scaled.loc[half, "volume_z"].abs() < 3).all()
    assert (plain.loc[half, "range_z"] < -0.2).all()  # without the calendar: a collapse ...
    assert (plain.loc[half, "volume_z"] < -3).all()  # ... in range and volume


def index_like_bars(first: str, last: str, *, seed: int = 0) -> pd.DataFrame:
    """Smooth index-like daily bars on XNYS whose early closes are ordinary half-days: about
    half the volume (45-55%), a proportionally shorter range, an ordinary move (within two
    sigmas of a half session)."""
    times = bar_times("XNYS", first, last)
    n = len(times)
    rng = np.random.default_rng(seed)
    frac = session_fractions("XNYS", times)
    moves = rng.normal(0.0, 1.0, n)
    moves[frac < 1] = np.clip(moves[frac < 1], -2.0, 2.0)
    close = 100.0 * np.exp(np.cumsum(0.0003 + 0.01 * moves * np.sqrt(frac)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    wick = 0.004 * np.exp(rng.normal(0, 0.3, (2, n))) * frac
    volume = 1e9 * np.exp(rng.normal(0, 0.15, n))
    volume[frac < 1] *= rng.uniform(0.45, 0.55, (frac < 1).sum())
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": volume,
        },
        index=times,
    )


def early_close_scores(
    bars: pd.DataFrame, calendar: str | None, *, with_prophet: bool = True
) -> pd.DataFrame:
    """Each early close scored as the daily job does: its week's models, one bar per call."""
    early = bars.index[session_fractions("XNYS", bars.index) < 1]
    early = early[early > bars.index[300]]
    schedule = fit_schedule(
        bars, starts=period_starts(early).unique(), calendar=calendar, with_prophet=with_prophet
    )
    return pd.concat(
        score_bars(
            bars.loc[[ts]], history=bars[bars.index < ts], models=schedule, calendar=calendar
        )
        for ts in early
    )


@pytest.mark.slow
def test_normal_half_days_raise_no_warning() -> None:
    bars = index_like_bars("2016-01-01", "2022-12-31")
    scaled = early_close_scores(bars, "XNYS")
    assert len(scaled) >= 12 and not scaled["warmup"].any()
    assert (scaled["severity"] == "info").all()
    plain = early_close_scores(bars, None, with_prophet=False)  # ignoring the early closes
    assert (plain["severity"] != "info").mean() > 0.5
    assert set(plain.loc[plain["severity"] != "info", "kind"]) == {"volume_drop"}


@pytest.mark.slow
def test_no_early_close_of_goog_is_flagged() -> None:
    scores = early_close_scores(goog_bars(), "XNYS")
    assert len(scores) == 16 and not scores["warmup"].any()
    assert (scores["severity"] == "info").all()
