"""Isolation Forest: normalised, seeded, higher for outliers, poolable."""

from __future__ import annotations

import numpy as np
import pytest

from quant_pipelines.quality import build_features, fit_iforest
from quant_pipelines_tests.quality_tests.conftest import make_bars


@pytest.fixture(scope="module")
def features():
    return build_features(make_bars(200, seed=1))


def test_scores_are_normalised_and_seeded(features) -> None:
    a = fit_iforest(features, seed=7).score(features)
    b = fit_iforest(features, seed=7).score(features)
    c = fit_iforest(features, seed=8).score(features)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ((a >= 0) & (a <= 1)).all()
    assert (a[features["warmup"].to_numpy()] == 0).all()


def test_outlier_scores_higher(features) -> None:
    model = fit_iforest(features, seed=0)
    odd = features.iloc[[150]].copy()
    odd[["move_z", "range_z", "volume_z"]] = [10.0, 3.0, 6.0]
    ordinary = model.score(features.iloc[25:])
    assert model.score(odd)[0] > np.quantile(ordinary, 0.99)


def test_pooled_fit_over_symbols(features) -> None:
    other = build_features(make_bars(200, seed=2) * 50.0)
    model = fit_iforest([features, other], seed=0)
    assert model.n_train == 2 * (~features["warmup"]).sum()


def test_too_little_history_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="longer history"):
        fit_iforest(build_features(make_bars(30)))
