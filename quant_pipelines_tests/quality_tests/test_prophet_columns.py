"""The cached component table changes nothing Prophet computes, and is computed once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prophet import Prophet

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.quality import ProphetModels, _prophet_fit, fit_prophet
from quant_pipelines.quality._prophet_columns import install
from quant_pipelines.quality._prophet_predict import quiet_prophet, seeded_global_rng


def _fits(bars: pd.DataFrame) -> list[ProphetModels]:
    """One history per configuration: daily with weekly seasonality and a calendar, hourly
    (12 days: no seasonality)."""
    hourly = bars.iloc[:300].copy()
    hourly.index = pd.date_range("2024-03-01", periods=300, freq="h", tz="UTC", name="ts")
    return [
        fit_prophet(bars.iloc[-300:], seed=1, calendar="XNYS", uncertainty_samples=200),
        fit_prophet(hourly, seed=2, freq="1h", uncertainty_samples=200),
    ]


@pytest.fixture(scope="module")
def bars(source: SyntheticSource) -> pd.DataFrame:
    return source.bars("AAPL", "2022-01-01", "2023-12-31")


@pytest.fixture(scope="module")
def pairs(bars: pd.DataFrame) -> list[tuple[ProphetModels, ProphetModels]]:
    """(plain Prophet, cached table) fits of the same histories."""
    mp = pytest.MonkeyPatch()
    mp.setattr(_prophet_fit, "install", lambda model: model)
    try:
        plain = _fits(bars)
    finally:
        mp.undo()
    return list(zip(plain, _fits(bars), strict=True))


def _predict(model: Prophet, ds: pd.DatetimeIndex) -> pd.DataFrame:
    with quiet_prophet(), seeded_global_rng(7):
        return model.predict(pd.DataFrame({"ds": ds}))


def test_fits_bands_and_predictions_are_bit_for_bit_prophets(pairs) -> None:
    assert {len(p.price.seasonalities) for p, _ in pairs} == {0, 1}  # both table shapes
    for plain, cached in pairs:
        assert "regressor_column_matrix" in vars(cached.price)
        assert "regressor_column_matrix" not in vars(plain.price)
        for which in ("price", "volume"):
            a, b = getattr(plain, which), getattr(cached, which)
            assert a.params.keys() == b.params.keys()
            for name in a.params:
                np.testing.assert_array_equal(a.params[name], b.params[name])
            pd.testing.assert_frame_equal(a.train_component_cols, b.train_component_cols)
            np.testing.assert_array_equal(getattr(plain.band, which), getattr(cached.band, which))
            last = a.history["ds"].iloc[-1]
            ds = pd.date_range(last - pd.Timedelta(days=30), periods=60, freq="D")
            pd.testing.assert_frame_equal(_predict(a, ds), _predict(b, ds), check_exact=True)


def test_models_read_back_from_json_are_bound_and_predict_the_same(pairs) -> None:
    for _, cached in pairs:
        text = cached.to_json()
        assert "regressor_column_matrix" not in text  # an instance binding is never stored
        loaded = ProphetModels.from_json(text)
        assert "regressor_column_matrix" in vars(loaded.price)
        ds = pd.date_range(cached.price.history["ds"].iloc[-1], periods=10, freq="D")
        pd.testing.assert_frame_equal(
            _predict(cached.price, ds), _predict(loaded.price, ds), check_exact=True
        )


def test_the_table_is_computed_once_per_configuration(
    pairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = Prophet.regressor_column_matrix

    def counting(self, seasonal_features, modes):
        calls.append(tuple(seasonal_features.columns))
        return original(self, seasonal_features, modes)

    monkeypatch.setattr(Prophet, "regressor_column_matrix", counting)
    _, cached = pairs[0]
    model = cached.price
    ds = pd.date_range(model.history["ds"].iloc[-1], periods=5, freq="D")
    _predict(model, ds)
    _predict(model, ds)
    assert calls == []  # the fits above already met this configuration
    # A model without the binding computes the table at every use (two per predict).
    plain = ProphetModels.from_json(cached.to_json()).price
    del plain.regressor_column_matrix
    _predict(plain, ds)
    assert len(calls) == 2


def test_modes_get_prophets_group_components_on_every_call(pairs) -> None:
    _, cached = pairs[0]
    model = cached.price
    features, _, _, _ = model.make_all_seasonality_features(model.history)
    results = []
    for _ in range(2):
        modes = {"additive": ["weekly"], "multiplicative": []}
        table, out = install(model).regressor_column_matrix(features, modes)
        results.append((table, out))
    expected_modes = {"additive": ["weekly"], "multiplicative": []}
    expected, expected_modes = Prophet.regressor_column_matrix(model, features, expected_modes)
    for table, modes in results:
        pd.testing.assert_frame_equal(table, expected)
        assert modes == expected_modes
    results[0][0].iloc[0, 0] = 99  # a caller changing its copy changes nothing cached
    again, _ = model.regressor_column_matrix(
        features, {"additive": ["weekly"], "multiplicative": []}
    )
    pd.testing.assert_frame_equal(again, expected)
