"""Prophet models of a symbol's log price and log volume: fit weekly, stored as JSON, predict daily.

A bar's Prophet score is the distance of its observation outside the model's uncertainty
interval, in interval widths: ``max(0, y - upper, lower - y) / (upper - lower)``, so 0 inside
the interval and 1 one full width beyond it. The symbol's score is the larger of the price and
the volume score.

The volume model sees volume per full session (volume over the bar's session fraction, from
the model's calendar), so an early close is not a collapse in volume.

A bar's interval depends only on the model, the seed and the bar (``_prophet_predict``): the
point forecast is computed bar by bar and the interval width comes from a fixed table per
horizon step, so a bar scores the same alone or in any batch. Prophet draws its uncertainty
samples from NumPy's global generator; scoring seeds it and restores the previous state.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_daily._prepare import prepare, stale_runs
from quant_pipelines.bench._legacy_daily._prophet_predict import (
    distance,
    horizon_steps,
    interval_table,
    point_forecast,
    quiet_prophet,
)
from quant_pipelines.marketdata.calendars import CalendarLike, session_fractions

if TYPE_CHECKING:
    from prophet import Prophet

FORMAT_VERSION = 2
"""Version of the JSON document written by :meth:`ProphetModels.to_json` (2 adds the calendar
and bar frequency; version 1 documents are still read, without session scaling)."""

_READABLE_FORMATS = (1, 2)

TRAIN_WINDOW = 250
"""Default number of trailing usable bars a model is fitted on."""

INTERVAL_WIDTH = 0.95
"""Default width of Prophet's uncertainty interval."""

UNCERTAINTY_SAMPLES = 200
"""Default number of Prophet's simulated paths behind the interval."""

MIN_TRAIN = 20
"""Fewest usable bars a model is fitted on."""


def _quiet() -> None:
    """Silence cmdstanpy's per-fit INFO lines and prophet's "plotly not installed" error."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    from cmdstanpy.utils import get_logger  # sets up cmdstanpy's logger (DEBUG) on first call

    for logger in (get_logger(), logging.getLogger("prophet")):
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _naive(index: pd.DatetimeIndex) -> pd.Series:
    return pd.Series(index.tz_convert("UTC").tz_localize(None).as_unit("ns"))


def _fit_one(ds: pd.Series, y: np.ndarray, *, seed: int, width: float, samples: int) -> Prophet:
    from prophet import Prophet

    span_days = (ds.iloc[-1] - ds.iloc[0]).days if len(ds) else 0
    model = Prophet(
        growth="linear",
        yearly_seasonality=False,
        weekly_seasonality=span_days >= 21,
        daily_seasonality=False,
        interval_width=width,
        uncertainty_samples=samples,
    )
    with quiet_prophet():
        model.fit(pd.DataFrame({"ds": ds.to_numpy(), "y": y}), seed=seed)
    return model


@dataclass
class ProphetModels:
    """A symbol's Prophet models.

    Attributes:
        price: Model of the log close.
        volume: Model of the log volume (None when the history has no positive volume).
        fitted_through: Timestamp (UTC) of the last training bar.
        n_train: Number of training bars.
        calendar: Calendar name of the symbol (session scaling of volume), or None.
        freq: Bar frequency.
    """

    price: Prophet
    volume: Prophet | None
    fitted_through: pd.Timestamp
    n_train: int
    calendar: str | None = None
    freq: str = "1D"
    _tables: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def to_json(self) -> str:
        """Serialise with prophet's ``model_to_json`` (for a MongoDB document or GridFS).

        The interval tables computed so far (:func:`fit_prophet` computes its seed's) travel
        with the models, so the daily job's scoring only computes point forecasts.
        """
        from prophet.serialize import model_to_json

        with quiet_prophet():
            price = model_to_json(self.price)
            volume = None if self.volume is None else model_to_json(self.volume)
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "price": price,
                "volume": volume,
                "fitted_through": self.fitted_through.isoformat(),
                "n_train": self.n_train,
                "calendar": self.calendar,
                "freq": self.freq,
                "intervals": [
                    [which, seed, lower.tolist(), upper.tolist()]
                    for (which, seed), (lower, upper) in sorted(self._tables.items())
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ProphetModels:
        """Rebuild models written by :meth:`to_json`.

        Raises:
            ValueError: If the document is not a version this code reads.
        """
        from prophet.serialize import model_from_json

        _quiet()
        doc: dict[str, Any] = json.loads(text)
        if doc.get("format") not in _READABLE_FORMATS:
            raise ValueError(
                f"unsupported ProphetModels format {doc.get('format')!r}; "
                f"expected one of {_READABLE_FORMATS} (refit the models)"
            )
        with quiet_prophet():
            price = model_from_json(doc["price"])
            volume = None if doc["volume"] is None else model_from_json(doc["volume"])
        models = cls(
            price=price,
            volume=volume,
            fitted_through=pd.Timestamp(doc["fitted_through"]),
            n_train=int(doc["n_train"]),
            calendar=doc.get("calendar"),
            freq=doc.get("freq", "1D"),
        )
        for which, seed, lower, upper in doc.get("intervals", []):
            models._tables[(which, int(seed))] = (np.array(lower), np.array(upper))
        return models

    def score(
        self, bars: pd.DataFrame, *, seed: int = 0, session_fraction: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Prophet scores of bars (prediction only, no fitting).

        Each bar's score depends on the model, the seed and the bar alone, not on the other
        bars passed with it.

        Args:
            bars: Bars of the symbol (bar schema; duplicates allowed).
            seed: Seed of Prophet's uncertainty sampling.
            session_fraction: Each row's session fraction (volume is scaled by it); computed
                from the model's calendar when None (1 without a calendar).

        Returns:
            Frame aligned to ``bars`` with ``prophet_price``, ``prophet_volume`` and
            ``prophet`` (their maximum); 0 where the value cannot be scored (e.g. a
            non-positive price).
        """
        _quiet()
        index = bars.index
        out = pd.DataFrame(
            {"prophet_price": 0.0, "prophet_volume": 0.0, "prophet": 0.0},
            index=index,
        )
        if len(bars) == 0:
            return out
        if session_fraction is None:
            session_fraction = (
                np.ones(len(bars))
                if self.calendar is None
                else session_fractions(self.calendar, index, freq=self.freq)
            )
        ds = _naive(index).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            log_close = np.log(bars["close"].to_numpy(dtype="float64"))
            log_vol = np.log(bars["volume"].to_numpy(dtype="float64") / session_fraction)
        out["prophet_price"] = self._distance("price", ds, log_close, seed)
        if self.volume is not None:
            out["prophet_volume"] = self._distance("volume", ds, log_vol, seed)
        out["prophet"] = np.maximum(out["prophet_price"], out["prophet_volume"])
        return out

    def interval_tables(self, *, seed: int) -> None:
        """Compute (and cache) the interval tables of both models for ``seed``."""
        for which, model in (("price", self.price), ("volume", self.volume)):
            if model is not None and (which, int(seed)) not in self._tables:
                self._tables[(which, int(seed))] = interval_table(model, seed=seed)

    def _distance(self, which: str, ds: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        model = self.price if which == "price" else self.volume
        self.interval_tables(seed=seed)
        lower, upper = self._tables[(which, int(seed))]
        step = horizon_steps(model, ds, len(lower))
        yhat = point_forecast(model, ds)
        return distance(y, yhat + lower[step], yhat + upper[step])


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
    _quiet()
    prep = prepare(history, calendar=calendar, freq=freq, stale_run=stale_run)
    close = np.where(prep.frame_bad, np.nan, prep.frame["close"].to_numpy(dtype="float64"))
    keep = ~prep.frame_bad & ~stale_runs(close, min_run=stale_run)
    if exclude is not None and len(exclude):
        keep &= ~prep.frame.index.isin(pd.DatetimeIndex(exclude))
    rows = np.flatnonzero(keep)[-window:]
    if len(rows) < MIN_TRAIN:
        raise ValueError(f"need at least {MIN_TRAIN} usable bars to fit Prophet, got {len(rows)}")
    frame = prep.frame.iloc[rows]
    ds = _naive(frame.index)
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
    models.interval_tables(seed=seed)
    return models
