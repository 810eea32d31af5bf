"""Observation features: causal, finite, bounded, in the documented order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.signals import LABELS
from quant_pipelines.simulator import (
    BASE_FEATURES,
    ObservationConfig,
    build_features,
    feature_names,
)
from quant_pipelines.simulator._layout import window_matrix


def test_names_and_shape(bars: pd.DataFrame) -> None:
    feats = build_features(bars)
    assert list(feats.columns) == [*BASE_FEATURES, *(f"regime_{x}" for x in LABELS)]
    assert feats.index.equals(bars.index)
    assert feats.dtypes.eq(np.float32).all()
    assert feature_names(ObservationConfig(regime_one_hot=False)) == list(BASE_FEATURES)


def test_finite_clipped_and_one_hot(bars: pd.DataFrame) -> None:
    cfg = ObservationConfig(clip=3.0)
    values = build_features(bars, cfg).to_numpy()
    assert np.isfinite(values).all()
    assert (np.abs(values) <= 3.0).all()
    one_hot = values[:, len(BASE_FEATURES) :]
    assert (one_hot.sum(axis=1) == 1.0).all()


@settings(max_examples=15, deadline=None)
@given(cut=st.integers(min_value=5, max_value=399))
def test_no_look_ahead(bars: pd.DataFrame, cut: int) -> None:
    """Features of bar t never change when later bars are removed (or altered)."""
    full = build_features(bars).to_numpy()
    prefix = build_features(bars.iloc[:cut]).to_numpy()
    np.testing.assert_array_equal(prefix, full[:cut])


def test_future_shock_does_not_move_past_features(bars: pd.DataFrame) -> None:
    shocked = bars.copy()
    shocked.iloc[300:, :4] *= 3.0
    np.testing.assert_array_equal(
        build_features(shocked).to_numpy()[:300], build_features(bars).to_numpy()[:300]
    )


def test_window_matrix_layout() -> None:
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    rows = window_matrix(feats, 3, extra=2)
    assert rows.shape == (6, 8)
    np.testing.assert_array_equal(rows[0], [0, 0, 0, 0, 0, 1, 0, 0])  # zero-padded warm-up
    np.testing.assert_array_equal(rows[5], [6, 7, 8, 9, 10, 11, 0, 0])  # oldest first


@pytest.mark.parametrize("field", ["window", "vol_window", "indicator_window"])
def test_config_validation(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ObservationConfig(**{field: 0})
    cfg = ObservationConfig(window=4)
    assert ObservationConfig.from_dict(cfg.to_dict()) == cfg
