"""Prophet's forecast band, precomputed at the weekly fit for the sessions until the next one.

Private to the quality package. A bar's Prophet interval depends only on the model, the seed
and the bar's timestamp (``_prophet_predict``), so it does not change with the bars that
arrive after the fit: recomputing it every day is waste. At the fit, :func:`compute_band`
evaluates, for every expected bar time of :data:`BAND_HORIZON` after the last training bar,
exactly what the daily path computes (``yhat`` from ``point_forecast``, the interval offsets
of its horizon step from the interval table), and stores ``yhat``, ``lower`` and ``upper``
with the models. Daily scoring looks a bar's timestamp up (``np.searchsorted``) and predicts
only the bars that are not in the band (beyond it, off the grid, or another seed).

The grid is the model's calendar when it has one (its bar times at the model's frequency,
half-days included, holidays left out; daily bars stamped at midnight UTC of the session date,
as many vendors' files are, get the session dates); without a calendar it is the most common
spacing of the training timestamps after the last one.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import bar_times, parse_freq, sessions
from quant_pipelines.quality._prophet_predict import horizon_steps, point_forecast

if TYPE_CHECKING:
    from prophet import Prophet

BAND_HORIZON = pd.Timedelta("14D")
"""Span of the band after the last training bar: the week the Sunday refit scores (its
``REFIT`` period) and, as margin, the week after it (one missed refit)."""

BAND_MAX_STEPS = 1000
"""Most bar times in a band (hourly 24/7 bars need 336; minute bars are capped)."""


@dataclass(frozen=True)
class ForecastBand:
    """Prophet's ``yhat``, ``lower`` and ``upper`` at fixed bar times, for one seed.

    Attributes:
        seed: Seed of Prophet's sampling the interval offsets were drawn with.
        stamps: Sorted, distinct bar times (UTC, int64 nanoseconds).
        price: ``(3, len(stamps))``: ``yhat``, ``lower``, ``upper`` of the log-close model.
        volume: The same for the log-volume model, or None without one.
    """

    seed: int
    stamps: np.ndarray
    price: np.ndarray
    volume: np.ndarray | None

    def lookup(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Band column of each timestamp and whether it is in the band.

        Args:
            stamps: UTC timestamps as int64 nanoseconds (any order).

        Returns:
            ``(columns, hit)``: int64 columns (valid where ``hit``) and the bool mask.
        """
        if not len(self.stamps):
            return np.zeros(len(stamps), dtype=np.int64), np.zeros(len(stamps), dtype=bool)
        cols = np.minimum(np.searchsorted(self.stamps, stamps), len(self.stamps) - 1)
        return cols, self.stamps[cols] == stamps  # beyond the last: never equal

    def until(self) -> dt.datetime:
        """The band's last bar time (UTC)."""
        return pd.Timestamp(int(self.stamps[-1]), tz="UTC").to_pydatetime()

    def to_doc(self) -> dict[str, Any]:
        """A JSON-ready dict; arrays as base64 of little-endian bytes (exact, compact)."""
        return {
            "seed": int(self.seed),
            "n": len(self.stamps),
            "ts": _encode(self.stamps.astype("<i8")),
            "price": _encode(self.price.astype("<f8")),
            "volume": None if self.volume is None else _encode(self.volume.astype("<f8")),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ForecastBand:
        """Rebuild a band written by :meth:`to_doc`."""
        n = int(doc["n"])
        volume = doc.get("volume")
        return cls(
            seed=int(doc["seed"]),
            stamps=_decode(doc["ts"], "<i8").astype(np.int64),
            price=_decode(doc["price"], "<f8").astype(np.float64).reshape(3, n),
            volume=None
            if volume is None
            else _decode(volume, "<f8").astype(np.float64).reshape(3, n),
        )


def _encode(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


def _decode(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def band_grid(
    model: Prophet, *, calendar: str | None, freq: str, horizon: pd.Timedelta = BAND_HORIZON
) -> np.ndarray:
    """Bar times (UTC, int64 ns) in ``(last training bar, last + horizon]``, capped.

    Args:
        model: A fitted Prophet model (its training timestamps are tz-naive UTC).
        calendar: The model's calendar name, or None for the training spacing.
        freq: Bar frequency.
        horizon: Span after the last training bar.

    Returns:
        At most :data:`BAND_MAX_STEPS` sorted timestamps.
    """
    history = model.history["ds"]
    last = pd.Timestamp(history.iloc[-1]).tz_localize("UTC")
    end = last + horizon
    if calendar is not None:
        first_day = last.tz_convert(None).normalize() - pd.Timedelta("1D")
        stamps = bar_times(calendar, first_day, end.tz_convert(None), freq=freq).asi8
        if parse_freq(freq) >= pd.Timedelta("1D") and last.value not in stamps:
            # daily bars stamped at midnight UTC of the session date (many vendors' files)
            labels = sessions(calendar, first_day, end.tz_convert(None))
            stamps = labels.tz_localize("UTC").asi8
        stamps = stamps[(stamps > last.value) & (stamps <= end.value)]
    else:
        diffs = np.diff(history.to_numpy(dtype="datetime64[ns]").astype(np.int64))
        diffs = diffs[diffs > 0]
        if len(diffs):
            values, counts = np.unique(diffs, return_counts=True)
            step = int(values[np.argmax(counts)])
        else:
            step = pd.Timedelta("1D").value
        n = int(horizon.value // step)
        stamps = last.value + step * np.arange(1, n + 1, dtype=np.int64)
    return stamps[:BAND_MAX_STEPS].astype(np.int64)


def model_band(
    model: Prophet, stamps: np.ndarray, table: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """``(3, n)``: ``yhat``, ``lower``, ``upper`` as the daily path computes them.

    Args:
        model: A fitted Prophet model.
        stamps: UTC bar times as int64 nanoseconds.
        table: The model's interval table ``(lower, upper)`` for the band's seed.

    Returns:
        The band rows.
    """
    lower, upper = table
    ds = stamps.astype("datetime64[ns]")
    step = horizon_steps(model, ds, len(lower))
    yhat = point_forecast(model, ds)
    return np.vstack([yhat, yhat + lower[step], yhat + upper[step]])
