"""Fitting a symbol's Prophet models (the weekly job). Private module.

:func:`fit_prophet` is exported by :mod:`quant_pipelines.quality`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.quality._prepare import prepare
from quant_pipelines.quality._prophet_columns import install
from quant_pipelines.quality._prophet_predict import naive_utc, quiet_logs, quiet_prophet
from quant_pipelines.quality._runs import stale_runs
from quant_pipelines.quality.prophet_models import (
    INTERVAL_WIDTH,
    MIN_TRAIN,
    TRAIN_WINDOW,
    UNCERTAINTY_SAMPLES,
    ProphetModels,
)

if TYPE_CHECKING:
    from prophet import Prophet


def _fit_one(ds: pd.Series, y: np.ndarray, *, seed: int, width: float, samples: int) -> Prophet:
    from prophet import Prophet

    span_days = (ds.iloc[-1] - ds.iloc[0]).days if len(ds) else 0
    model = install(
        Prophet(
            growth="linear",
            yearly_seasonality=False,
            weekly_seasonality=span_days >= 21,
            daily_seasonality=False,
            interval_width=width,
            uncertainty_samples=samples,
        )
    )
    with quiet_prophet():
        model.fit(pd.DataFrame({"ds": ds.to_numpy(), "y": y}), seed=seed)
    return model


def fit_prophet(
    history: pd.DataFrame,
    *,
    seed: int = 0,
    window: int = TRAIN_WINDOW,
    exclude: pd.DatetimeIndex | None = None,
    interval_width: float = INTERVAL_WIDTH,
    uncertainty_samples: int = UNCERTAINTY_SAMPLES,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    stale_run: int = 5,
) -> ProphetModels:
    """Fit a symbol's Prophet models on the trailing usable bars of its history.

    Bars with impossible values, every repeat of a stale run and bars in ``exclude`` are
    left out.

    Args:
        history: Bars of the symbol.
        seed: Seed passed to Stan's optimiser.
        window: Number of trailing usable bars to fit on.
        exclude: Timestamps to leave out (e.g. bars analysts marked false positive).
        interval_width: Prophet's uncertainty interval width.
        uncertainty_samples: Prophet's simulated paths per prediction.
        calendar: Calendar of the symbol: volume is modelled per full session (early closes
            scaled up) and scoring does the same.
        freq: Bar frequency.
        stale_run: Run of identical closes whose repeats are left out.

    Returns:
        The fitted models.

    Raises:
        ValueError: If fewer than :data:`MIN_TRAIN` usable bars remain, or a bar lies
            outside the calendar's sessions.
    """
    quiet_logs()
    prep = prepare(history, calendar=calendar, freq=freq, stale_run=stale_run)
    close = np.where(prep.frame_bad, np.nan, prep.frame["close"].to_numpy(dtype="float64"))
    keep = ~prep.frame_bad & ~stale_runs(close, min_run=stale_run)
    if exclude is not None and len(exclude):
        keep &= ~prep.frame.index.isin(pd.DatetimeIndex(exclude))
    rows = np.flatnonzero(keep)[-window:]
    if len(rows) < MIN_TRAIN:
        raise ValueError(f"need at least {MIN_TRAIN} usable bars to fit Prophet, got {len(rows)}")
    frame = prep.frame.iloc[rows]
    ds = naive_utc(frame.index)
    price = _fit_one(
        ds,
        np.log(frame["close"].to_numpy()),
        seed=seed,
        width=interval_width,
        samples=uncertainty_samples,
    )
    vol = frame["volume"].to_numpy() / prep.fraction[rows]
    positive = vol > 0
    volume = None
    if positive.sum() >= MIN_TRAIN:
        volume = _fit_one(
            ds[positive].reset_index(drop=True),
            np.log(vol[positive]),
            seed=seed,
            width=interval_width,
            samples=uncertainty_samples,
        )
    name = None if calendar is None else calendar if isinstance(calendar, str) else calendar.name
    models = ProphetModels(price, volume, frame.index[-1], len(frame), calendar=name, freq=freq)
    models.compute_band(seed=seed)  # the interval tables, then the band until the next fit
    return models
