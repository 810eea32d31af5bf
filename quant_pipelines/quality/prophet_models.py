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

The fit also stores the forecast band of the sessions until the next weekly fit (``_band``):
daily scoring looks bars up in it and runs Prophet only for bars outside it, and the Prophet
models themselves are rebuilt from their JSON only then (lazily).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import session_fractions
from quant_pipelines.quality._band import ForecastBand, band_grid, model_band
from quant_pipelines.quality._prophet_predict import (
    distance,
    horizon_steps,
    interval_table,
    model_from_text,
    model_to_text,
    point_forecast,
    quiet_logs,
)

if TYPE_CHECKING:
    from prophet import Prophet

FORMAT_VERSION = 3
"""Version of the JSON document written by :meth:`ProphetModels.to_json` (3 adds the forecast
band; 2 added the calendar and bar frequency). Versions 1 and 2 are still read: without a
band every bar is predicted, and version 1 has no session scaling."""

_READABLE_FORMATS = (1, 2, 3)

TRAIN_WINDOW = 250
"""Default number of trailing usable bars a model is fitted on."""

INTERVAL_WIDTH = 0.95
"""Default width of Prophet's uncertainty interval."""

UNCERTAINTY_SAMPLES = 200
"""Default number of Prophet's simulated paths behind the interval."""

MIN_TRAIN = 20
"""Fewest usable bars a model is fitted on."""

_WHICH = ("price", "volume")


class ProphetModels:
    """A symbol's Prophet models, their interval tables and their forecast band.

    Models read from JSON are rebuilt on first use only: a daily batch whose bars are all in
    the stored band never builds them.

    Attributes:
        fitted_through: Timestamp (UTC) of the last training bar.
        n_train: Number of training bars.
        calendar: Calendar name of the symbol (session scaling of volume), or None.
        freq: Bar frequency.
        band: The stored forecast band, or None (every bar is predicted).
    """

    def __init__(
        self,
        price: Prophet | None,
        volume: Prophet | None,
        fitted_through: pd.Timestamp,
        n_train: int,
        calendar: str | None = None,
        freq: str = "1D",
        *,
        band: ForecastBand | None = None,
        json_models: dict[str, str | None] | None = None,
    ) -> None:
        self._models: dict[str, Prophet | None] = {"price": price, "volume": volume}
        self._json = dict(json_models or {})
        self.fitted_through = fitted_through
        self.n_train = n_train
        self.calendar = calendar
        self.freq = freq
        self.band = band
        self._tables: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def __repr__(self) -> str:
        return (
            f"ProphetModels(fitted_through={self.fitted_through}, n_train={self.n_train}, "
            f"calendar={self.calendar!r}, freq={self.freq!r}, band={self.band is not None})"
        )

    def _model(self, which: str) -> Prophet | None:
        if self._models.get(which) is None and self._json.get(which) is not None:
            self._models[which] = model_from_text(self._json[which])
        return self._models.get(which)

    def _text(self, which: str) -> str | None:
        """prophet's JSON of a model: as read (unchanged by prediction), or serialised."""
        if self._json.get(which) is not None:
            return self._json[which]
        model = self._models.get(which)
        return None if model is None else model_to_text(model)

    @property
    def price(self) -> Prophet:
        """Model of the log close."""
        return self._model("price")

    @property
    def volume(self) -> Prophet | None:
        """Model of the log volume (None when the history has no positive volume)."""
        return self._model("volume")

    @property
    def has_volume(self) -> bool:
        """Whether there is a volume model (without rebuilding it)."""
        return self._models.get("volume") is not None or self._json.get("volume") is not None

    def to_json(self) -> str:
        """Serialise with prophet's ``model_to_json`` (for a MongoDB document or GridFS).

        The interval tables computed so far and the forecast band (:func:`fit_prophet`
        computes its seed's) travel with the models, so the daily job's scoring only looks
        the band up.
        """
        models = {which: self._text(which) for which in _WHICH}
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "price": models["price"],
                "volume": models["volume"],
                "fitted_through": self.fitted_through.isoformat(),
                "n_train": self.n_train,
                "calendar": self.calendar,
                "freq": self.freq,
                "intervals": [
                    [which, seed, lower.tolist(), upper.tolist()]
                    for (which, seed), (lower, upper) in sorted(self._tables.items())
                ],
                "band": None if self.band is None else self.band.to_doc(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ProphetModels:
        """Rebuild models written by :meth:`to_json` (the Prophet models lazily).

        Raises:
            ValueError: If the document is not a version this code reads.
        """
        doc: dict[str, Any] = json.loads(text)
        if doc.get("format") not in _READABLE_FORMATS:
            raise ValueError(
                f"unsupported ProphetModels format {doc.get('format')!r}; "
                f"expected one of {_READABLE_FORMATS} (refit the models)"
            )
        band = doc.get("band") if doc["format"] >= 3 else None  # older: predict every bar
        models = cls(
            price=None,
            volume=None,
            fitted_through=pd.Timestamp(doc["fitted_through"]),
            n_train=int(doc["n_train"]),
            calendar=doc.get("calendar"),
            freq=doc.get("freq", "1D"),
            band=None if band is None else ForecastBand.from_doc(band),
            json_models={"price": doc["price"], "volume": doc["volume"]},
        )
        for which, seed, lower, upper in doc.get("intervals", []):
            models._tables[(which, int(seed))] = (np.array(lower), np.array(upper))
        return models

    def score(
        self,
        bars: pd.DataFrame,
        *,
        seed: int = 0,
        session_fraction: np.ndarray | None = None,
        use_band: bool = True,
    ) -> pd.DataFrame:
        """Prophet scores of bars (prediction only, no fitting).

        Each bar's score depends on the model, the seed and the bar alone, not on the other
        bars passed with it, nor on whether it was looked up in the band or predicted.

        Args:
            bars: Bars of the symbol (bar schema; duplicates allowed).
            seed: Seed of Prophet's uncertainty sampling.
            session_fraction: Each row's session fraction (volume is scaled by it); computed
                from the model's calendar when None (1 without a calendar).
            use_band: Look bars up in the stored band (False: predict every bar, the path
                for bars outside the band).

        Returns:
            Frame aligned to ``bars`` with ``prophet_price``, ``prophet_volume`` and
            ``prophet`` (their maximum); 0 where the value cannot be scored (e.g. a
            non-positive price).
        """
        index = bars.index
        if len(bars) and session_fraction is None:
            session_fraction = (
                np.ones(len(bars))
                if self.calendar is None
                else session_fractions(self.calendar, index, freq=self.freq)
            )
        price, volume = self.distances(
            pd.DatetimeIndex(index).tz_convert("UTC").as_unit("ns").asi8,
            bars["close"].to_numpy(dtype="float64"),
            bars["volume"].to_numpy(dtype="float64"),
            session_fraction if len(bars) else np.ones(0),
            seed=seed,
            use_band=use_band,
        )
        return pd.DataFrame(
            {
                "prophet_price": price,
                "prophet_volume": volume,
                "prophet": np.maximum(price, volume),
            },
            index=index,
        )

    def distances(
        self,
        stamps: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        session_fraction: np.ndarray,
        *,
        seed: int = 0,
        use_band: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(prophet_price, prophet_volume)`` of bars given as arrays (see :meth:`score`).

        Args:
            stamps: UTC bar times as int64 nanoseconds.
            close: Closes.
            volume: Volumes.
            session_fraction: Session fraction of each bar.
            seed: Seed of Prophet's uncertainty sampling.
            use_band: Look bars up in the stored band first.

        Returns:
            The two distance arrays (0 where a value cannot be scored or without a volume
            model).
        """
        n = len(stamps)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_close = np.log(close)
            log_vol = np.log(volume / session_fraction)
        price = self._distance("price", stamps, log_close, seed, use_band) if n else np.zeros(0)
        vol = np.zeros(n)
        if n and self.has_volume:
            vol = self._distance("volume", stamps, log_vol, seed, use_band)
        return price, vol

    def interval_tables(self, *, seed: int) -> None:
        """Compute (and cache) the interval tables of both models for ``seed``."""
        for which in _WHICH:
            key = (which, int(seed))
            if key not in self._tables and (which == "price" or self.has_volume):
                self._tables[key] = interval_table(self._model(which), seed=seed)

    def compute_band(self, *, seed: int) -> ForecastBand:
        """Compute, store and return the forecast band of ``seed`` (see ``_band``)."""
        quiet_logs()
        self.interval_tables(seed=seed)
        stamps = band_grid(self.price, calendar=self.calendar, freq=self.freq)
        rows = {
            which: model_band(self._model(which), stamps, self._tables[(which, int(seed))])
            for which in _WHICH
            if which == "price" or self.has_volume
        }
        self.band = ForecastBand(int(seed), stamps, rows["price"], rows.get("volume"))
        return self.band

    def _distance(
        self, which: str, stamps: np.ndarray, y: np.ndarray, seed: int, use_band: bool
    ) -> np.ndarray:
        lower = np.empty(len(stamps))
        upper = np.empty(len(stamps))
        hit = np.zeros(len(stamps), dtype=bool)
        band = self.band
        if use_band and band is not None and band.seed == int(seed):
            rows = band.price if which == "price" else band.volume
            if rows is not None:
                cols, hit = band.lookup(stamps)
                lower[hit], upper[hit] = rows[1, cols[hit]], rows[2, cols[hit]]
        if not hit.all():
            quiet_logs()
            miss = ~hit
            model = self._model(which)
            self.interval_tables(seed=seed)
            low, up = self._tables[(which, int(seed))]
            ds = stamps[miss].astype("datetime64[ns]")
            step = horizon_steps(model, ds, len(low))
            yhat = point_forecast(model, ds)
            lower[miss], upper[miss] = yhat + low[step], yhat + up[step]
        return distance(y, lower, upper)
