"""Causal bar features for the statistical detectors.

Every feature of a bar compares it with trailing statistics of the *usable* bars before it
(bars with impossible values and stale repeats are left out of those statistics, so one bad
print does not blind the detector for the next weeks). The statistics are the indicators of
:mod:`quant_pipelines.signals` (realized volatility, Bollinger mean and spread of log volume,
a simple moving average of the range) computed window by window (``_robust``), so that a
bar's features are bit-identical whatever history sits in front of its windows. In their
inputs, a value beyond 5 robust sigmas (median absolute deviation) of the 60 values before it
(returns: 4 robust sigmas of the previous 20) counts as a one-sigma move, so an earlier
outlier barely moves them (causal).

Session length: volume is divided by the bar's session fraction and the range by its square
root (a range grows like the square root of the time traded), both in the bar's own features
and in the trailing statistics, so a normal XNYS half-day (fraction 0.54) looks like a normal
day. Close-to-close returns and gaps are not scaled: they include the overnight, which a
short session does not shorten.

Columns of :func:`build_features`:

* ``log_return`` — ``log(close / previous close)``;
* ``range_over_close`` — ``(high - low) / close``;
* ``gap`` — overnight gap ``log(open / previous close)``;
* ``ret_z`` — log return over the trailing volatility (scaled by ``sqrt`` of the bars elapsed
  when bars are missing or skipped);
* ``dev_z`` — ``log(close / median of the previous 5 closes)`` over the same volatility;
* ``move_z`` — the smaller of ``ret_z`` and ``dev_z`` when they agree in sign, else 0: a spike
  scores on both, the reversion after it (or the bars after a level shift) on one only;
* ``gap_z`` / ``gap_move_z`` — the gap over the volatility, and its combination with the open's
  distance from the trailing median close, like ``move_z``;
* ``range_z`` — ``log`` of the session-scaled range over its trailing mean;
* ``volume_z`` — session-scaled log volume against the trailing mean and standard deviation
  of session-scaled log volume;
* ``joint_z`` — ``sqrt(move_z² + gap_move_z² + volume_z²)``: how far the bar is from ordinary
  on all counts at once (it lets the forest isolate a bar that is extreme in one feature in
  fewer splits than when that feature is one random choice among several);
* ``warmup`` — True when the trailing statistics are not available yet (features are NaN);
* ``session_fraction`` — the bar's trading time as a fraction of a regular session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_daily._prepare import Prepared, prepare, previous_usable
from quant_pipelines.bench._legacy_daily._robust import (
    clip_outliers,
    signed_min,
    trailing_mean,
    trailing_median,
    trailing_std,
)
from quant_pipelines.marketdata.calendars import CalendarLike

FEATURE_COLUMNS: tuple[str, ...] = (
    "log_return",
    "range_over_close",
    "gap",
    "ret_z",
    "dev_z",
    "move_z",
    "gap_z",
    "gap_move_z",
    "range_z",
    "volume_z",
    "joint_z",
)
"""Numeric feature columns, in order."""

IFOREST_FEATURES: tuple[str, ...] = ("move_z", "volume_z", "joint_z")
"""Scale-free features the Isolation Forest is trained on, as absolute values (both tails of a
feature are equally anomalous, and folding them doubles the data at each tail). The gap enters
through ``joint_z``; ``gap_move_z`` and ``range_z`` on their own were measured to lower the
forest's recall at a fixed alert rate (genuine wide-range and gap days are common), so they
are reported for explanations only."""

WINDOW = 20
"""Default trailing window (bars) of the volatility, range and volume statistics."""

_MEDIAN_BARS = 5
_Z_CLIP = 50.0
_RETURN_CLIP = 4.0  # returns beyond 4 robust sigmas of the trailing window count as 1 sigma


def _log_positive(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x) & (x > 0)
    return np.where(ok, np.log(np.where(ok, x, 1.0)), np.nan)


def trailing_stats(prep: Prepared, *, window: int = WINDOW) -> dict[str, np.ndarray]:
    """Trailing statistics over the usable frame rows, indexed by frame row (NaN elsewhere).

    Each value at a usable row covers that row and the usable rows before it; a bar is
    compared with the statistics of the usable row *before* it.

    Args:
        prep: Output of :func:`~quant_pipelines.quality._prepare.prepare`.
        window: Trailing window (usable bars).

    Returns:
        Arrays ``sigma`` (volatility of per-bar log returns), ``median`` (of the last 5
        closes), ``range_mean`` (session-scaled range), ``lv_mean`` and ``lv_std``
        (session-scaled log volume).
    """
    n = len(prep.frame)
    u = np.flatnonzero(prep.usable)
    out = {k: np.full(n, np.nan) for k in ("sigma", "median", "range_mean", "lv_mean", "lv_std")}
    if len(u) < 2:
        return out
    f = prep.frame.iloc[u]
    close = f["close"].to_numpy(dtype="float64")
    steps = np.maximum(np.diff(prep.pos[u]), 1.0)
    per_bar = np.concatenate([[np.nan], np.log(close[1:] / close[:-1]) / np.sqrt(steps)])
    clipped = clip_outliers(per_bar, center=False, window=window, k=_RETURN_CLIP)
    out["sigma"][u] = trailing_std(clipped, window, ddof=1)
    out["median"][u] = trailing_median(close, _MEDIAN_BARS, min_count=3)

    frac = prep.fraction[u]
    rng = (f["high"].to_numpy() - f["low"].to_numpy()) / close / np.sqrt(frac)
    log_rng = clip_outliers(_log_positive(rng))
    out["range_mean"][u] = trailing_mean(np.exp(log_rng), window, min_count=window // 2)

    log_vol = clip_outliers(_log_positive(f["volume"].to_numpy(dtype="float64") / frac))
    out["lv_mean"][u] = trailing_mean(log_vol, window, min_count=window // 2)
    out["lv_std"][u] = trailing_std(log_vol, window, min_count=window // 2)
    return out


def _safe_log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ok = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b)
    return np.where(ok, np.log(np.where(ok, a, 1.0) / np.where(ok, b, 1.0)), np.nan)


def features_from_prepared(
    prep: Prepared, *, window: int = WINDOW, stats: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Features of every batch row of a prepared view (see :func:`build_features`).

    Args:
        prep: The prepared batch.
        window: Trailing window of the statistics.
        stats: :func:`trailing_stats` of ``prep`` when already computed.

    Returns:
        The features, aligned to ``prep.bars``.
    """
    stats = trailing_stats(prep, window=window) if stats is None else stats
    prev = previous_usable(prep.usable)[prep.row_to_frame]
    has_prev = prev >= 0
    j = np.where(has_prev, prev, 0)

    def at_prev(values: np.ndarray) -> np.ndarray:
        return np.where(has_prev, values[j], np.nan)

    bars = prep.bars
    o, h, low, c, v = (bars[col].to_numpy(dtype="float64") for col in bars.columns)
    frac = prep.fraction[prep.row_to_frame]
    prev_close = at_prev(prep.frame["close"].to_numpy(dtype="float64"))
    steps = np.where(has_prev, prep.pos[prep.row_to_frame] - prep.pos[j], np.nan)
    scale = at_prev(stats["sigma"]) * np.sqrt(np.maximum(steps, 1.0))
    median = at_prev(stats["median"])
    with np.errstate(invalid="ignore", divide="ignore"):
        log_return = _safe_log_ratio(c, prev_close)
        gap = _safe_log_ratio(o, prev_close)
        range_over_close = np.where(c > 0, (h - low) / np.where(c > 0, c, 1.0), np.nan)
        ret_z = log_return / scale
        dev_z = _safe_log_ratio(c, median) / scale
        gap_z = gap / scale
        gap_dev_z = _safe_log_ratio(o, median) / scale
        scaled_range = np.maximum(range_over_close / np.sqrt(frac), 1e-12)
        range_z = np.log(scaled_range / at_prev(stats["range_mean"]))
        lv_std = at_prev(stats["lv_std"])
        volume_z = (_log_positive(v / frac) - at_prev(stats["lv_mean"])) / np.where(
            lv_std > 0, lv_std, np.nan
        )
    warmup = ~np.isfinite(scale) | (scale <= 0)
    frame = pd.DataFrame(
        {
            "log_return": log_return,
            "range_over_close": range_over_close,
            "gap": gap,
            "ret_z": ret_z,
            "dev_z": dev_z,
            "move_z": signed_min(np.nan_to_num(ret_z), np.nan_to_num(dev_z)),
            "gap_z": gap_z,
            "gap_move_z": signed_min(np.nan_to_num(gap_z), np.nan_to_num(gap_dev_z)),
            "range_z": np.clip(range_z, -10.0, 10.0),
            "volume_z": volume_z,
        },
        index=bars.index,
    )
    z_cols = ["ret_z", "dev_z", "move_z", "gap_z", "gap_move_z", "volume_z"]
    frame[z_cols] = frame[z_cols].clip(-_Z_CLIP, _Z_CLIP)
    parts = frame[["move_z", "gap_move_z", "volume_z"]].to_numpy(dtype="float64")
    frame["joint_z"] = np.sqrt(np.square(np.nan_to_num(parts)).sum(axis=1))
    frame.loc[warmup, list(FEATURE_COLUMNS[3:])] = np.nan
    frame["warmup"] = warmup
    frame["session_fraction"] = frac
    return frame


def build_features(
    bars: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    window: int = WINDOW,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Causal features of one symbol's bars.

    Args:
        bars: The batch (any order; duplicate rows get features too).
        history: Earlier bars of the symbol; trailing statistics start from them, so a
            one-bar batch is fully featured when ``history`` covers about ``3 * window`` bars,
            and exactly as with all of history once it covers 160 usable bars.
        calendar: Calendar, calendar name or asset class: bars missing against it widen the
            expected move (``sqrt`` of the bars elapsed), and early closes and other short
            sessions are scaled to a full session.
        freq: Bar frequency.
        window: Trailing window of the statistics.
        symbol: Named in error messages.

    Returns:
        Frame aligned to ``bars`` with :data:`FEATURE_COLUMNS` (NaN where undefined, e.g.
        during warm-up or for a non-positive price), the bool column ``warmup`` and
        ``session_fraction``.

    Raises:
        ValueError: If a bar lies outside the calendar's sessions.
    """
    prep = prepare(bars, history=history, calendar=calendar, freq=freq, symbol=symbol)
    return features_from_prepared(prep, window=window)


def model_matrix(features: pd.DataFrame) -> np.ndarray:
    """The Isolation Forest input: absolute :data:`IFOREST_FEATURES`, NaN replaced by 0."""
    return np.abs(np.nan_to_num(features[list(IFOREST_FEATURES)].to_numpy(dtype="float64")))
