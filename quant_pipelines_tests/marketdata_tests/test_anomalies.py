"""Injected anomalies: each kind is applied as documented and labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata import ANOMALY_KINDS, SyntheticSource, validate_bars

RANGE = ("2019-01-01", "2024-12-31")


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return SyntheticSource(0).bars("SPY", *RANGE)


def _inject(kind: str, *, seed: int = 11, rate: float = 0.02) -> tuple[pd.DataFrame, pd.DataFrame]:
    return SyntheticSource(0).bars_with_anomalies("SPY", *RANGE, rate=rate, kinds=[kind], seed=seed)


def test_labels_have_the_documented_shape() -> None:
    bars, labels = SyntheticSource(0).bars_with_anomalies("SPY", *RANGE, rate=0.02, seed=3)
    assert list(labels.columns) == ["ts", "kind", "detail"]
    assert str(labels["ts"].dt.tz) == "UTC"
    assert labels["ts"].is_monotonic_increasing
    assert set(labels["kind"]) == set(ANOMALY_KINDS)  # every kind once at least
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]


def test_injection_is_deterministic_in_the_seed() -> None:
    source = SyntheticSource(0)
    a = source.bars_with_anomalies("AAPL", *RANGE, seed=5)
    b = source.bars_with_anomalies("AAPL", *RANGE, seed=5)
    c = source.bars_with_anomalies("AAPL", *RANGE, seed=6)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not a[1]["ts"].equals(c[1]["ts"])


def test_untouched_bars_equal_the_clean_bars(clean: pd.DataFrame) -> None:
    bars, labels = SyntheticSource(0).bars_with_anomalies("SPY", *RANGE, rate=0.02, seed=4)
    untouched = clean.index[~clean.index.isin(labels["ts"])]
    dedup = bars[~bars.index.duplicated()]
    pd.testing.assert_frame_equal(dedup.loc[untouched], clean.loc[untouched])


@pytest.mark.parametrize("seed", [1, 2])
def test_price_spike(clean: pd.DataFrame, seed: int) -> None:
    bars, labels = _inject("price_spike", seed=seed)
    assert len(labels) >= 1 and bars.index.equals(clean.index)
    log_close = np.log(clean["close"])
    for ts in labels["ts"]:
        i = clean.index.get_loc(ts)
        sigma = log_close.diff().iloc[i - 20 : i].std()
        jump = np.log(bars["close"].iloc[i] / bars["close"].iloc[i - 1])
        assert abs(jump) >= 8 * sigma - 1e-12
        reverting = np.log(bars["close"].iloc[i + 1] / bars["close"].iloc[i])
        assert np.sign(reverting) == -np.sign(jump)
        assert bars["close"].iloc[i + 1] == clean["close"].iloc[i + 1]
        row = bars.iloc[i]
        assert (
            row["low"]
            <= min(row["open"], row["close"])
            <= max(row["open"], row["close"])
            <= row["high"]
        )


def test_stale_price_labels_every_bar_of_the_run(clean: pd.DataFrame) -> None:
    bars, labels = _inject("stale_price", seed=3)
    assert len(labels) >= 5
    stale = bars.loc[labels["ts"], ["open", "high", "low", "close"]].to_numpy()
    assert (stale == stale[:, :1]).all()  # open = high = low = close
    flagged = clean.index.isin(labels["ts"]).astype(int)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flagged, [0]])))
    lengths = edges[1::2] - edges[::2]
    assert len(lengths) >= 1 and lengths.min() >= 5 and lengths.max() <= 10
    for start, length in zip(edges[::2], lengths, strict=True):
        run = bars["close"].iloc[start : start + length]
        assert run.nunique() == 1 and run.iloc[0] == clean["close"].iloc[start - 1]


def test_volume_burst(clean: pd.DataFrame) -> None:
    bars, labels = _inject("volume_burst")
    ratio = bars.loc[labels["ts"], "volume"] / clean.loc[labels["ts"], "volume"]
    assert (ratio >= 10).all() and (ratio <= 30).all()


def test_missing_bars_are_absent(clean: pd.DataFrame) -> None:
    bars, labels = _inject("missing_bars")
    assert len(labels) >= 1
    assert not bars.index.isin(labels["ts"]).any()
    assert len(bars) == len(clean) - len(labels)
    assert labels["ts"].isin(clean.index).all()


def test_ohlc_inconsistency_breaks_a_validation_rule() -> None:
    bars, labels = _inject("ohlc_inconsistency", rate=0.05)
    issues = validate_bars(bars)
    flagged = {i.ts for i in issues if i.rule == "inconsistent_ohlc"}
    assert flagged == set(labels["ts"])


def test_duplicate_bar_repeats_a_ts(clean: pd.DataFrame) -> None:
    bars, labels = _inject("duplicate_bar")
    duplicated = bars.index[bars.index.duplicated()]
    assert set(duplicated) == set(labels["ts"])
    assert len(bars) == len(clean) + len(labels)
    for ts in labels["ts"]:
        rows = bars.loc[[ts]]
        assert len(rows) == 2 and (rows.iloc[0] == rows.iloc[1]).all()
    assert bars.index.is_monotonic_increasing


def test_non_positive_price(clean: pd.DataFrame) -> None:
    bars, labels = _inject("non_positive_price", rate=0.05)
    assert (bars.loc[labels["ts"], "close"] <= 0).all()
    flagged = {i.ts for i in validate_bars(bars) if i.rule == "non_positive_price"}
    assert flagged == set(labels["ts"])


@pytest.mark.parametrize("rate", [0.0, 0.001, 0.01, 0.05, 0.5])
def test_rate_sets_the_number_of_events(clean: pd.DataFrame, rate: float) -> None:
    _, labels = SyntheticSource(0).bars_with_anomalies(
        "SPY", *RANGE, rate=rate, kinds=["volume_burst"], seed=1
    )
    room = (len(clean) - 21) // 14  # one event per 14-bar block after a 21-bar warm-up
    expected = 0 if rate == 0 else min(room, max(1, round(rate * len(clean))))
    assert len(labels) == expected


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="price_spike"):
        SyntheticSource(0).bars_with_anomalies("SPY", *RANGE, kinds=["meteor"])


def test_bad_rate_is_rejected() -> None:
    with pytest.raises(ValueError, match="rate"):
        SyntheticSource(0).bars_with_anomalies("SPY", *RANGE, rate=1.5)


def test_short_ranges_get_no_events_instead_of_failing() -> None:
    bars, labels = SyntheticSource(0).bars_with_anomalies("SPY", "2024-01-02", "2024-01-10")
    assert len(labels) == 0 and len(bars) == 7
