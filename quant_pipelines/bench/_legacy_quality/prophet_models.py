"""Prophet models of a symbol's log price and log volume: fit weekly, stored as JSON, predict daily.

A bar's Prophet score is the distance of its observation outside the model's uncertainty
interval, in interval widths: ``max(0, y - upper, lower - y) / (upper - lower)``, so 0 inside
the interval and 1 one full width beyond it. The symbol's score is the larger of the price and
the volume score.

Prophet draws its uncertainty samples from NumPy's global generator; scoring seeds it for the
call and restores the previous state afterwards, so the same model, bars and seed always give
the same scores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_quality._prepare import prepare

if TYPE_CHECKING:
    from prophet import Prophet

FORMAT_VERSION = 1
"""Version of the JSON document written by :meth:`ProphetModels.to_json`."""

TRAIN_WINDOW = 250
"""Default number of trailing usable bars a model is fitted on."""

INTERVAL_WIDTH = 0.95
"""Default width of Prophet's uncertainty interval."""

UNCERTAINTY_SAMPLES = 200
"""Default number of Prophet's simulated paths behind the interval."""

MIN_TRAIN = 20
"""Fewest usable bars a model is fitted on."""

_MAX_FILLER = 2000  # filler rows at most (about 8 years of daily steps)


def _quiet() -> None:
    """Silence cmdstanpy's per-fit INFO lines and prophet's "plotly not installed" error."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    from cmdstanpy.utils import get_logger  # sets up cmdstanpy's logger (DEBUG) on first call

    for logger in (get_logger(), logging.getLogger("prophet")):
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def _quiet_prophet() -> Iterator[None]:
    """Hide prophet 1.5's pandas deprecation warnings (its own code, nothing we can fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"prophet\.")
        yield


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        with _quiet_prophet():
            yield
    finally:
        np.random.set_state(state)


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
    with _quiet_prophet():
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
    """

    price: Prophet
    volume: Prophet | None
    fitted_through: pd.Timestamp
    n_train: int

    def to_json(self) -> str:
        """Serialise with prophet's ``model_to_json`` (for a MongoDB document or GridFS)."""
        from prophet.serialize import model_to_json

        with _quiet_prophet():
            price = model_to_json(self.price)
            volume = None if self.volume is None else model_to_json(self.volume)
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "price": price,
                "volume": volume,
                "fitted_through": self.fitted_through.isoformat(),
                "n_train": self.n_train,
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
        if doc.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported ProphetModels format {doc.get('format')!r}; "
                f"expected {FORMAT_VERSION} (refit the models)"
            )
        with _quiet_prophet():
            price = model_from_json(doc["price"])
            volume = None if doc["volume"] is None else model_from_json(doc["volume"])
        return cls(
            price=price,
            volume=volume,
            fitted_through=pd.Timestamp(doc["fitted_through"]),
            n_train=int(doc["n_train"]),
        )

    def score(self, bars: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
        """Prophet scores of bars (prediction only, no fitting).

        Args:
            bars: Bars of the symbol (bar schema; duplicates allowed).
            seed: Seed of Prophet's uncertainty sampling.

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
        unique = bars[~index.duplicated(keep="first")]
        ds = _naive(unique.index).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            log_close = np.log(unique["close"].to_numpy(dtype="float64"))
            log_vol = np.log(unique["volume"].to_numpy(dtype="float64"))
        with _seeded_global_rng(seed):
            price = _predict_distance(self.price, ds, log_close)
            volume = (
                np.zeros(len(unique))
                if self.volume is None
                else _predict_distance(self.volume, ds, log_vol)
            )
        where = unique.index.get_indexer(index)
        out["prophet_price"] = price[where]
        out["prophet_volume"] = volume[where]
        out["prophet"] = np.maximum(out["prophet_price"], out["prophet_volume"])
        return out


def _future_rows(model: Prophet, ds: np.ndarray) -> np.ndarray:
    """The bars' timestamps plus filler steps, so each bar sits at its true horizon.

    Prophet widens the trend uncertainty of a prediction row by row: a lone bar predicted a
    week after the fit would count as one step ahead. Filler timestamps at the training
    spacing (skipped where a bar is within half a step) put each bar at the right step.
    """
    hist = model.history["ds"]
    last = hist.iloc[-1].to_datetime64()
    bars = np.unique(ds)
    if len(hist) < 2 or bars[-1] <= last:
        return bars
    step = (hist.iloc[-1] - hist.iloc[0]).to_timedelta64() / (len(hist) - 1)
    n = min(int(np.ceil((bars[-1] - last) / step)), _MAX_FILLER)
    grid = last + step * np.arange(1, n + 1)
    nearest = np.abs(grid[:, None] - bars[None, :]).min(axis=1)
    grid = grid[(nearest > step / 2) & (grid < bars[-1])]
    return np.union1d(bars, grid.astype(bars.dtype))


def _predict_distance(model: Prophet, ds: np.ndarray, y: np.ndarray) -> np.ndarray:
    future = _future_rows(model, ds)
    forecast = model.predict(pd.DataFrame({"ds": future}))  # sorted by ds
    at = np.searchsorted(forecast["ds"].to_numpy(), ds)
    return _distance(forecast.iloc[at], y)


def _distance(forecast: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    upper = forecast["yhat_upper"].to_numpy(dtype="float64")
    lower = forecast["yhat_lower"].to_numpy(dtype="float64")
    width = np.maximum(upper - lower, 1e-12)
    with np.errstate(invalid="ignore"):
        dist = np.maximum(np.maximum(y - upper, lower - y), 0.0) / width
    return np.where(np.isfinite(dist), dist, 0.0)


def fit_prophet(
    history: pd.DataFrame,
    *,
    seed: int = 0,
    window: int = TRAIN_WINDOW,
    exclude: pd.DatetimeIndex | None = None,
    interval_width: float = INTERVAL_WIDTH,
    uncertainty_samples: int = UNCERTAINTY_SAMPLES,
) -> ProphetModels:
    """Fit a symbol's Prophet models on the trailing usable bars of its history.

    Bars that break a rule (impossible values, duplicates' repeats, stale repeats) and bars
    in ``exclude`` are left out.

    Args:
        history: Bars of the symbol.
        seed: Seed passed to Stan's optimiser.
        window: Number of trailing usable bars to fit on.
        exclude: Timestamps to leave out (e.g. bars analysts marked false positive).
        interval_width: Prophet's uncertainty interval width.
        uncertainty_samples: Prophet's simulated paths per prediction.

    Returns:
        The fitted models.

    Raises:
        ValueError: If fewer than :data:`MIN_TRAIN` usable bars remain.
    """
    _quiet()
    prep = prepare(history)
    frame = prep.frame[prep.usable]
    if exclude is not None and len(exclude):
        frame = frame[~frame.index.isin(pd.DatetimeIndex(exclude))]
    frame = frame.iloc[-window:]
    if len(frame) < MIN_TRAIN:
        raise ValueError(f"need at least {MIN_TRAIN} usable bars to fit Prophet, got {len(frame)}")
    ds = _naive(frame.index)
    price = _fit_one(
        ds,
        np.log(frame["close"].to_numpy()),
        seed=seed,
        width=interval_width,
        samples=uncertainty_samples,
    )
    vol = frame["volume"].to_numpy()
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
    return ProphetModels(price, volume, frame.index[-1], len(frame))
