"""Causal features: no look-ahead, scale-free, robust to the bar after an outlier."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.quality import FEATURE_COLUMNS, build_features
from quant_pipelines_tests.quality_tests.conftest import make_bars

BARS = make_bars(120, seed=3)
FEATURES = build_features(BARS)


def test_columns_and_alignment() -> None:
    assert list(FEATURES.columns) == [*FEATURE_COLUMNS, "warmup", "session_fraction"]
    assert FEATURES.index.equals(BARS.index)
    assert FEATURES["warmup"].iloc[:20].all()
    assert not FEATURES["warmup"].iloc[30:].any()
    assert FEATURES.iloc[30:].notna().all().all()


@settings(max_examples=20, deadline=None)
@given(cut=st.integers(min_value=25, max_value=119), factor=st.floats(0.2, 5.0))
def test_no_look_ahead(cut: int, factor: float) -> None:
    """Changing or dropping bars after ``cut`` never changes features up to ``cut``."""
    changed = BARS.copy()
    changed.iloc[cut + 1 :, :4] *= factor
    changed.iloc[cut + 1 :, 4] *= factor
    for other in (build_features(changed), build_features(BARS.iloc[: cut + 1])):
        pd.testing.assert_frame_equal(other.iloc[: cut + 1], FEATURES.iloc[: cut + 1])


def test_history_gives_the_same_features_as_one_long_frame() -> None:
    split = build_features(BARS.iloc[100:], history=BARS.iloc[:100])
    pd.testing.assert_frame_equal(split, FEATURES.iloc[100:])


def test_scale_free() -> None:
    scaled = BARS * np.array([7.0, 7.0, 7.0, 7.0, 1000.0])
    z = ["ret_z", "move_z", "gap_move_z", "range_z", "volume_z"]
    pd.testing.assert_frame_equal(build_features(scaled)[z], FEATURES[z], atol=1e-9)


def test_spike_scores_on_its_bar_not_on_the_reversion() -> None:
    bars = BARS.copy()
    t = 80
    bars.iloc[t, bars.columns.get_loc("close")] *= 1.12  # about 12 daily sigmas
    bars.iloc[t, bars.columns.get_loc("high")] = bars["close"].iloc[t]
    f = build_features(bars)
    assert f["move_z"].iloc[t] > 8
    assert abs(f["ret_z"].iloc[t + 1]) > 8  # the raw return reverts ...
    assert abs(f["move_z"].iloc[t + 1]) < 3  # ... but the robust move does not flag it
    assert abs(f["gap_move_z"].iloc[t + 1]) < 3
    # the outlier does not inflate the trailing volatility of the following bars
    assert np.allclose(
        f["ret_z"].iloc[t + 2 : t + 20], FEATURES["ret_z"].iloc[t + 2 : t + 20], rtol=0.35
    )


def test_volume_burst_shows_in_volume_z_only() -> None:
    bars = BARS.copy()
    bars.iloc[90, bars.columns.get_loc("volume")] *= 20
    f = build_features(bars)
    assert f["volume_z"].iloc[90] > 8
    assert abs(f["move_z"].iloc[90]) < 3


def test_impossible_rows_do_not_poison_later_features() -> None:
    bars = BARS.copy()
    bars.iloc[60, bars.columns.get_loc("close")] = -1.0
    f = build_features(bars)
    assert np.isnan(f["log_return"].iloc[60])
    assert f.iloc[61:].drop(columns="warmup").notna().all().all()
    assert abs(f["ret_z"].iloc[61]) < 5


def test_missing_bars_widen_the_expected_move(source) -> None:
    bars = source.bars("SPY", "2023-01-01", "2023-06-30")
    gappy = bars.drop(bars.index[[100, 101, 102]])
    with_cal = build_features(gappy, calendar="XNYS")
    without = build_features(gappy)
    ts = bars.index[103]
    assert abs(with_cal.loc[ts, "ret_z"]) == abs(without.loc[ts, "ret_z"]) / 2 or np.isclose(
        abs(with_cal.loc[ts, "ret_z"]) * 2, abs(without.loc[ts, "ret_z"])
    )


def test_a_long_history_is_cut_without_changing_any_feature() -> None:
    """Features of a batch are bit-identical with all of history or only its needed tail."""
    bars = make_bars(700, seed=8)
    rng = np.random.default_rng(8)
    bursts = rng.choice(700, 120, replace=False)  # outliers that the robust windows tame
    bars.iloc[bursts, 4] *= rng.uniform(3.0, 30.0, 120)
    bars.iloc[bursts[:60], 1] *= rng.uniform(1.02, 1.1, 60)
    bars.iloc[300:320, :4] = bars["close"].iloc[299]  # a long stale run inside the history
    bars.iloc[400, 3] = -1.0  # and an impossible value
    full = build_features(bars)
    for cut in (0, 200, 350, 450):
        part = build_features(bars.iloc[600:], history=bars.iloc[cut:600])
        pd.testing.assert_frame_equal(part, full.iloc[600:], check_exact=True)


def test_stale_repeats_enter_the_statistics_until_the_run_is_stale() -> None:
    """Causal: repeats 2-4 of a run were ordinary bars when they came; later ones are not."""
    bars = BARS.copy()
    bars.iloc[60:68, :4] = bars["close"].iloc[59]  # 9 identical closes from bar 59
    grown = build_features(bars)
    prefix = build_features(bars.iloc[:63])
    pd.testing.assert_frame_equal(grown.iloc[:63], prefix)
