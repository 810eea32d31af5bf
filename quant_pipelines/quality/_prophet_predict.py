"""Prediction-only Prophet distances that do not depend on which other bars are scored.

Private to the quality package. Prophet's own ``predict`` samples the uncertainty of a whole
prediction frame at once: the interval of one row depends on how many rows the frame has and
where they sit (trend changes are drawn row by row, noise for every row), so the same bar
predicted alone or inside a batch gets different intervals. Here the two parts are separated:

* the point forecast ``yhat`` of each bar is deterministic and row by row (Prophet with its
  uncertainty sampling switched off);
* the interval around it is a fixed table per model and seed: Prophet's interval offsets
  (``yhat_lower - yhat``, ``yhat_upper - yhat``) on a grid of :data:`HORIZON` at the training
  spacing after the last training bar. A bar takes the offsets of its horizon step (rounded;
  the last step for bars beyond the table, the first for bars inside the training span).

For Prophet's additive model the offsets do not depend on the seasonal terms, so this is the
interval Prophet would give the bar as the ``h``-th step of a forecast, and a bar's distance
depends only on the model, the seed and the bar: batch size and position change nothing.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd

from quant_pipelines.quality._prophet_columns import install
from quant_pipelines.quality._prophet_yhat import fast_yhat

if TYPE_CHECKING:
    from prophet import Prophet

HORIZON = pd.Timedelta("28D")
"""Span of the interval table: four weekly refits can be missed before the interval stops
widening with the horizon."""

MAX_STEPS = 2000
"""Most steps in an interval table (hourly bars: about 12 weeks)."""


def quiet_logs() -> None:
    """Silence cmdstanpy's per-fit INFO lines and prophet's "plotly not installed" error."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    from cmdstanpy.utils import get_logger  # sets up cmdstanpy's logger (DEBUG) on first call

    for logger in (get_logger(), logging.getLogger("prophet")):
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def naive_utc(index: pd.DatetimeIndex) -> pd.Series:
    """Tz-naive UTC ``ns`` timestamps, as Prophet's ``ds`` column wants them."""
    return pd.Series(index.tz_convert("UTC").tz_localize(None).as_unit("ns"))


def model_from_text(text: str) -> Prophet:
    """A Prophet model from prophet's ``model_to_json`` text."""
    from prophet.serialize import model_from_json

    quiet_logs()
    with quiet_prophet():
        return install(model_from_json(text))


def model_to_text(model: Prophet) -> str:
    """prophet's ``model_to_json`` text of a model."""
    from prophet.serialize import model_to_json

    with quiet_prophet():
        return model_to_json(model)


@contextlib.contextmanager
def quiet_prophet() -> Iterator[None]:
    """Hide prophet 1.5's pandas deprecation warnings (its own code, nothing we can fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"prophet\.")
        yield


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator (Prophet samples from it) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        with quiet_prophet():
            yield
    finally:
        np.random.set_state(state)


def point_forecast(model: Prophet, ds: np.ndarray) -> np.ndarray:
    """Prophet's ``yhat`` at each timestamp (tz-naive ``datetime64[ns]``), no sampling.

    The arithmetic of ``predict`` without its frames (``_prophet_yhat``, bit for bit the
    same), or ``predict`` itself for a configuration that path does not cover.
    """
    unique, where = np.unique(ds, return_inverse=True)
    with quiet_prophet():
        yhat = fast_yhat(model, unique) if len(unique) else None
    if yhat is not None:
        return yhat[where]
    samples = model.uncertainty_samples
    model.uncertainty_samples = 0
    try:
        with quiet_prophet():
            forecast = model.predict(pd.DataFrame({"ds": unique}))
    finally:
        model.uncertainty_samples = samples
    order = np.searchsorted(forecast["ds"].to_numpy(), unique)
    return forecast["yhat"].to_numpy(dtype="float64")[order][where]


def training_step(model: Prophet) -> np.timedelta64:
    """Mean spacing of the training timestamps (one day for a single training row)."""
    hist = model.history["ds"]
    if len(hist) < 2:
        return np.timedelta64(1, "D").astype("timedelta64[ns]")
    span = (hist.iloc[-1] - hist.iloc[0]).to_timedelta64()
    return (span / (len(hist) - 1)).astype("timedelta64[ns]")


def interval_table(model: Prophet, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prophet's interval offsets ``(lower, upper)`` around ``yhat`` for steps 1, 2, ...

    Args:
        model: A fitted Prophet model.
        seed: Seed of Prophet's sampling.

    Returns:
        Two float64 arrays, one value per horizon step.
    """
    last = model.history["ds"].iloc[-1].to_datetime64()
    step = training_step(model)
    n = int(np.clip(np.ceil(HORIZON.to_timedelta64() / step), 1, MAX_STEPS))
    grid = last + step * np.arange(1, n + 1)
    with seeded_global_rng(seed):
        forecast = model.predict(pd.DataFrame({"ds": grid}))
    yhat = forecast["yhat"].to_numpy(dtype="float64")
    return (
        forecast["yhat_lower"].to_numpy(dtype="float64") - yhat,
        forecast["yhat_upper"].to_numpy(dtype="float64") - yhat,
    )


_LAST_AND_STEP: WeakKeyDictionary[Prophet, tuple[np.datetime64, np.timedelta64]] = (
    WeakKeyDictionary()
)


def horizon_steps(model: Prophet, ds: np.ndarray, n_steps: int) -> np.ndarray:
    """0-based row of the interval table for each timestamp (its rounded step after the fit)."""
    if model not in _LAST_AND_STEP:  # a fitted model's training timestamps never change
        last = model.history["ds"].iloc[-1].to_datetime64()
        _LAST_AND_STEP[model] = (last, training_step(model))
    last, step = _LAST_AND_STEP[model]
    steps = np.rint((ds - last) / step)
    return np.clip(steps, 1, n_steps).astype(np.int64) - 1


def distance(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``max(0, y - upper, lower - y) / (upper - lower)``; 0 where ``y`` is not finite."""
    width = np.maximum(upper - lower, 1e-12)
    with np.errstate(invalid="ignore"):
        dist = np.maximum(np.maximum(y - upper, lower - y), 0.0) / width
    return np.where(np.isfinite(dist), dist, 0.0)
