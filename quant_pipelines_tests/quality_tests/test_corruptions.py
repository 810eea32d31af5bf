"""Planting labelled corruptions in real bars: what each kind changes, seeds, rates, purity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.quality.corruptions import (
    BLOCK,
    CORRUPTION_KINDS,
    STALE_LENGTH,
    plant_corruptions,
)
from quant_pipelines_tests._bars import goog_bars


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    """Real GOOG daily bars (2,148 sessions), in the schema's nanosecond unit."""
    bars = goog_bars()
    bars.index = bars.index.as_unit("ns")
    return bars


@pytest.fixture(scope="module")
def planted(goog: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GOOG with corruptions planted at 3% of the bars after the first 250."""
    return plant_corruptions(goog, rate=0.03, seed=7, start=250)


def _events(labels: pd.DataFrame, kind: str) -> pd.DataFrame:
    return labels[labels["kind"] == kind]


def test_rate_kinds_and_placement(
    goog: pd.DataFrame, planted: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, labels = planted
    per_kind = labels.groupby("kind").size()
    per_kind["stale_run"] //= STALE_LENGTH - 1  # six labels per run
    assert per_kind.sum() == round(0.03 * (len(goog) - 250))
    assert set(per_kind.index) == set(CORRUPTION_KINDS)
    counts = per_kind.tolist()
    assert max(counts) - min(counts) <= 1  # dealt round-robin
    first = goog.index.get_indexer(pd.DatetimeIndex(labels["ts"])).min()
    assert first > 250  # the training bars stay clean


def test_each_kind_changes_what_it_says(
    goog: pd.DataFrame, planted: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    corrupted, labels = planted
    cols = ["open", "high", "low", "close"]
    for ts in _events(labels, "price_x10")["ts"]:
        np.testing.assert_allclose(corrupted.loc[ts, cols], goog.loc[ts, cols] * 10)
    for ts in _events(labels, "price_div100")["ts"]:
        np.testing.assert_allclose(corrupted.loc[ts, cols], goog.loc[ts, cols] / 100)
    for ts in _events(labels, "high_below_low")["ts"]:
        assert corrupted.loc[ts, "high"] < corrupted.loc[ts, "low"]
    for ts in _events(labels, "negative_price")["ts"]:
        assert corrupted.loc[ts, "close"] < 0 and corrupted.loc[ts, "low"] < 0
    for ts in _events(labels, "zero_volume")["ts"]:
        assert corrupted.loc[ts, "volume"] == 0
    dropped = pd.DatetimeIndex(_events(labels, "dropped_session")["ts"])
    assert not dropped.isin(corrupted.index).any()
    assert len(corrupted) == len(goog) - len(dropped)
    touched = pd.DatetimeIndex(labels["ts"])
    untouched = goog.index[~goog.index.isin(touched)]
    pd.testing.assert_frame_equal(corrupted.loc[untouched], goog.loc[untouched])


def test_stale_runs_repeat_the_genuine_first_close(
    goog: pd.DataFrame, planted: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    corrupted, labels = planted
    stamps = pd.DatetimeIndex(_events(labels, "stale_run")["ts"])
    positions = corrupted.index.get_indexer(stamps)
    runs = np.split(positions, np.flatnonzero(np.diff(positions) != 1) + 1)
    assert {len(r) for r in runs} == {STALE_LENGTH - 1}
    for run in runs:
        first = run[0] - 1  # the genuine bar, unlabelled and unchanged
        genuine = goog.loc[corrupted.index[first], "close"]
        assert corrupted["close"].iloc[first] == genuine
        frozen = corrupted.iloc[run][["open", "high", "low", "close"]].to_numpy()
        assert (frozen == genuine).all()
        after = corrupted.index[run[-1] + 1]
        assert corrupted.loc[after, "close"] == goog.loc[after, "close"]


def test_seeded_and_pure(goog: pd.DataFrame) -> None:
    before = goog.copy()
    a = plant_corruptions(goog, seed=3, start=100)
    b = plant_corruptions(goog, seed=3, start=100)
    c = plant_corruptions(goog, seed=4, start=100)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not a[1]["ts"].equals(c[1]["ts"])
    pd.testing.assert_frame_equal(goog, before)
    shuffled = goog.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(plant_corruptions(shuffled, seed=3, start=100)[0], a[0])


def test_kinds_rate_and_room() -> None:
    bars = goog_bars().iloc[:400]
    _, labels = plant_corruptions(bars, rate=0.5, seed=0, kinds=["zero_volume"], start=0)
    assert len(labels) == len(bars) // BLOCK  # capped at one event per block
    assert set(labels["kind"]) == {"zero_volume"}
    corrupted, none = plant_corruptions(bars, rate=0.0)
    assert none.empty and corrupted.equals(bars)
    with pytest.raises(ValueError, match="unknown corruption kind"):
        plant_corruptions(bars, kinds=["price_spike"])
    with pytest.raises(ValueError, match="rate"):
        plant_corruptions(bars, rate=1.5)
