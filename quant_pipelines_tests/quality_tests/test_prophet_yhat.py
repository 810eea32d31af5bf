"""The point forecast without Prophet's frames equals ``Prophet.predict``'s ``yhat`` bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.quality import ProphetModels, fit_prophet
from quant_pipelines.quality._prophet_predict import point_forecast, quiet_prophet
from quant_pipelines.quality._prophet_yhat import fast_yhat, supported

DAY = 86_400 * 10**9


@pytest.fixture(scope="module")
def prophets(source: SyntheticSource) -> dict[str, object]:
    """Models as the package fits them: daily with a calendar and without, hourly (no
    seasonality), a short fit, and each of them read back from its JSON."""
    aapl = source.bars("AAPL", "2022-01-01", "2023-12-31")
    hourly = aapl.iloc[:300].copy()
    hourly.index = pd.date_range("2024-03-01", periods=300, freq="h", tz="UTC", name="ts")
    fits = {
        "xnys": fit_prophet(aapl.iloc[-400:], seed=1, calendar="XNYS", uncertainty_samples=50),
        "plain": fit_prophet(aapl.iloc[:120], seed=2, uncertainty_samples=50),
        "short": fit_prophet(aapl.iloc[:22], seed=3, uncertainty_samples=50),
        "hourly": fit_prophet(hourly, freq="1h", uncertainty_samples=50),
    }
    out = {}
    for name, models in fits.items():
        loaded = ProphetModels.from_json(models.to_json())
        for which in ("price", "volume"):
            out[f"{name}-{which}"] = getattr(models, which)
            out[f"{name}-{which}-json"] = getattr(loaded, which)
    return out


def _predict(model, ds: np.ndarray) -> np.ndarray:
    samples = model.uncertainty_samples
    model.uncertainty_samples = 0
    try:
        with quiet_prophet():
            return model.predict(pd.DataFrame({"ds": ds}))["yhat"].to_numpy()
    finally:
        model.uncertainty_samples = samples


def test_the_fitted_configurations_take_the_fast_path(prophets) -> None:
    assert all(supported(model) for model in prophets.values())
    assert {len(m.seasonalities) for m in prophets.values()} == {0, 1}  # both X shapes


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(
        [
            f"{n}-{w}{j}"
            for n in ("xnys", "plain", "short", "hourly")
            for w in ("price", "volume")
            for j in ("", "-json")
        ]
    ),
    offsets=st.lists(st.integers(-60 * DAY, 400 * DAY), min_size=1, max_size=300),
    midnight=st.booleans(),
)
def test_point_forecast_equals_predict_bit_for_bit(prophets, name, offsets, midnight) -> None:
    """Any timestamps (inside the training span, just after it, a year on; any order and
    duplicates), any batch size: the same float64 bits as ``predict``."""
    model = prophets[name]
    last = model.history["ds"].iloc[-1].to_datetime64().astype("datetime64[ns]")
    ds = last + np.array(offsets, dtype="timedelta64[ns]")
    if midnight:
        ds = ds.astype("datetime64[D]").astype("datetime64[ns]")
    unique, where = np.unique(ds, return_inverse=True)
    expected = _predict(model, unique)[where]
    got = point_forecast(model, ds)
    assert got.dtype == np.float64 and np.array_equal(got.view(np.int64), expected.view(np.int64))
    with quiet_prophet():
        direct = fast_yhat(model, unique)
    assert direct is not None and np.array_equal(direct[where], got)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"growth": "flat"},
        {"scaling": "minmax"},
        {"seasonality_mode": "multiplicative", "yearly_seasonality": True},
        {"daily_seasonality": True, "n_changepoints": 0},
    ],
    ids=["flat", "minmax", "multiplicative", "daily"],
)
def test_other_supported_configurations_equal_predict(kwargs) -> None:
    from prophet import Prophet

    rng = np.random.default_rng(7)
    ds = pd.date_range("2021-01-01", periods=500, freq="D")
    y = 50 + np.cumsum(rng.normal(0, 1, 500)) + 3 * np.sin(np.arange(500) * 2 * np.pi / 7)
    model = Prophet(uncertainty_samples=0, **kwargs)
    with quiet_prophet():
        model.fit(pd.DataFrame({"ds": ds, "y": y}), seed=0)
    query = np.unique(ds[0].to_datetime64() + rng.integers(0, 800 * DAY, 250).astype("m8[ns]"))
    assert supported(model)
    expected = _predict(model, query)
    assert np.array_equal(point_forecast(model, query).view(np.int64), expected.view(np.int64))


def test_unsupported_models_fall_back_to_predict() -> None:
    from prophet import Prophet

    ds = pd.date_range("2021-01-01", periods=120, freq="D")
    y = np.linspace(0.0, 5.0, 120) + np.random.default_rng(8).normal(0, 0.1, 120)
    model = Prophet(uncertainty_samples=0, weekly_seasonality=False, yearly_seasonality=False)
    model.add_regressor("x")
    frame = pd.DataFrame({"ds": ds, "y": y, "x": np.arange(120.0) % 5})
    with quiet_prophet():
        model.fit(frame, seed=0)
    assert not supported(model)
    with quiet_prophet():
        assert fast_yhat(model, ds.to_numpy()) is None
