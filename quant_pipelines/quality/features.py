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

import itertools

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.quality._prepare import Prepared, prepare
from quant_pipelines.quality._robust import (
    clip_outliers,
    reach,
    signed_min,
    trailing_mean,
    trailing_median,
    trailing_std,
)
from quant_pipelines.quality._runs import previous_usable

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
_PAD = 60  # NaN between symbols stacked in one series: clip_outliers' window, the longest
_STAT_KEYS = ("sigma", "median", "range_mean", "lv_mean", "lv_std")


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
        Arrays ``sigma`` (volatility of per-bar log returns, at every usable row), and, at
        the rows the batch's features read (each batch row's previous usable row), ``median``
        (of the last 5 closes), ``range_mean`` (session-scaled range), ``lv_mean`` and
        ``lv_std`` (session-scaled log volume).
    """
    return trailing_stats_many([prep], window=window)[0]


def _inputs(prep: Prepared) -> tuple[np.ndarray, ...] | None:
    """Usable rows, the positions among them that the batch's features read (each batch
    row's previous usable row), and the series the statistics are computed on (None: fewer
    than 2 usable rows)."""
    u = np.flatnonzero(prep.usable)
    if len(u) < 2:
        return None
    prev = previous_usable(prep.usable)[prep.row_to_frame]
    read = np.searchsorted(u, prev[prev >= 0])  # any order, repeats allowed
    f = prep.frame_values[u]
    close = f[:, 3]
    steps = np.maximum(np.diff(prep.pos[u]), 1.0)
    per_bar = np.concatenate([[np.nan], np.log(close[1:] / close[:-1]) / np.sqrt(steps)])
    frac = prep.fraction[u]
    rng = (f[:, 1] - f[:, 2]) / close / np.sqrt(frac)
    return u, read, per_bar, close, _log_positive(rng), _log_positive(f[:, 4] / frac)


def trailing_stats_many(
    preps: list[Prepared], *, window: int = WINDOW
) -> list[dict[str, np.ndarray]]:
    """:func:`trailing_stats` of many symbols, identical to one call each.

    The symbols' series are laid end to end with :data:`_PAD` NaN between them, longer than
    any window reaches back, so each value sees its own symbol's window exactly as alone (a
    window's statistic depends on the window's values only, ``_robust``), and every
    statistic is one NumPy call for the whole batch. ``sigma`` is computed at every usable
    row (the rules read it there); the others only where the batch's features read them.
    """
    keys = ("sigma", "median", "range_mean", "lv_mean", "lv_std")
    series = [_inputs(prep) for prep in preps]
    live = [s for s in series if s is not None]
    stats: dict[str, np.ndarray] = {}
    pad = np.full(max(_PAD, window), np.nan)
    if live:
        starts = np.cumsum([0] + [len(s[0]) + len(pad) for s in live])[:-1]
        read = np.concatenate([s[1] + start for s, start in zip(live, starts, strict=True)])

        def stacked(k: int) -> np.ndarray:
            return np.concatenate([x for s in live for x in (pad, s[k])][1:])

        clipped = clip_outliers(stacked(2), center=False, window=window, k=_RETURN_CLIP)
        means = reach(read, window, len(clipped))  # the clipped values the means read
        log_rng = clip_outliers(stacked(4), rows=means)
        log_vol = clip_outliers(stacked(5), rows=means)
        stats = {
            "sigma": trailing_std(clipped, window, ddof=1),
            "median": trailing_median(stacked(3), _MEDIAN_BARS, min_count=3, rows=read),
            "range_mean": trailing_mean(np.exp(log_rng), window, min_count=window // 2, rows=read),
            "lv_mean": trailing_mean(log_vol, window, min_count=window // 2, rows=read),
            "lv_std": trailing_std(log_vol, window, min_count=window // 2, rows=read),
        }
    out, start = [], 0
    for prep, s in zip(preps, series, strict=True):
        own = {k: np.full(len(prep.frame_index), np.nan) for k in keys}
        if s is not None:
            u = s[0]
            for k in keys:
                own[k][u] = stats[k][start : start + len(u)]
            start += len(u) + len(pad)
        out.append(own)
    return out


def _safe_log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ok = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b)
    return np.where(ok, np.log(np.where(ok, a, 1.0) / np.where(ok, b, 1.0)), np.nan)


def _gather(prep: Prepared, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Per batch row: OHLCV, session fraction, and the previous usable row's close, distance
    and statistics (NaN without one) -- the only inputs of a row's features."""
    prev = previous_usable(prep.usable)[prep.row_to_frame]
    has_prev = prev >= 0
    j = np.where(has_prev, prev, 0)
    rows = np.empty((8 + len(_STAT_KEYS), len(prev)))
    rows[:5] = prep.values.T
    rows[5] = prep.fraction[prep.row_to_frame]
    rows[6] = np.where(has_prev, prep.frame_close[j], np.nan)
    rows[7] = np.where(has_prev, prep.pos[prep.row_to_frame] - prep.pos[j], np.nan)
    for k, key in enumerate(_STAT_KEYS):
        rows[8 + k] = np.where(has_prev, stats[key][j], np.nan)
    return rows


def _features(rows: np.ndarray) -> dict[str, np.ndarray]:
    """The features of gathered rows (element-wise: rows of many symbols at once)."""
    o, h, low, c, v, frac, prev_close, steps = rows[:8]
    sigma, median, range_mean, lv_mean, lv_std = rows[8:]
    scale = sigma * np.sqrt(np.maximum(steps, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        log_return = _safe_log_ratio(c, prev_close)
        gap = _safe_log_ratio(o, prev_close)
        range_over_close = np.where(c > 0, (h - low) / np.where(c > 0, c, 1.0), np.nan)
        ret_z = log_return / scale
        dev_z = _safe_log_ratio(c, median) / scale
        gap_z = gap / scale
        gap_dev_z = _safe_log_ratio(o, median) / scale
        scaled_range = np.maximum(range_over_close / np.sqrt(frac), 1e-12)
        range_z = np.log(scaled_range / range_mean)
        volume_z = (_log_positive(v / frac) - lv_mean) / np.where(lv_std > 0, lv_std, np.nan)
    warmup = ~np.isfinite(scale) | (scale <= 0)
    move_z = signed_min(np.nan_to_num(ret_z), np.nan_to_num(dev_z))
    gap_move_z = signed_min(np.nan_to_num(gap_z), np.nan_to_num(gap_dev_z))
    out = {
        "log_return": log_return,
        "range_over_close": range_over_close,
        "gap": gap,
        "ret_z": ret_z,
        "dev_z": dev_z,
        "move_z": move_z,
        "gap_z": gap_z,
        "gap_move_z": gap_move_z,
        "range_z": np.clip(range_z, -10.0, 10.0),
        "volume_z": volume_z,
    }
    for col in ("ret_z", "dev_z", "move_z", "gap_z", "gap_move_z", "volume_z"):
        out[col] = np.clip(out[col], -_Z_CLIP, _Z_CLIP)
    sq = [np.square(np.nan_to_num(out[col])) for col in ("move_z", "gap_move_z", "volume_z")]
    out["joint_z"] = np.sqrt((sq[0] + sq[1]) + sq[2])  # the row sum, in NumPy's order
    if warmup.any():
        for col in FEATURE_COLUMNS[3:]:
            out[col] = np.where(warmup, np.nan, out[col])
    out["warmup"] = warmup
    out["session_fraction"] = frac
    return out


def feature_arrays(
    prep: Prepared, *, window: int = WINDOW, stats: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """The columns of :func:`features_from_prepared` as arrays (no frame is built).

    Args:
        prep: The prepared batch.
        window: Trailing window of the statistics.
        stats: :func:`trailing_stats` of ``prep`` when already computed.

    Returns:
        :data:`FEATURE_COLUMNS`, ``warmup`` and ``session_fraction``, aligned to the batch.
    """
    stats = trailing_stats(prep, window=window) if stats is None else stats
    return _features(_gather(prep, stats))


def feature_arrays_many(
    preps: list[Prepared], stats: list[dict[str, np.ndarray]]
) -> list[dict[str, np.ndarray]]:
    """:func:`feature_arrays` of many symbols: each row's inputs gathered per symbol, the
    arithmetic (element-wise, so identical) done once for all rows."""
    gathered = [_gather(prep, own) for prep, own in zip(preps, stats, strict=True)]
    if not gathered:
        return []
    every = _features(np.concatenate(gathered, axis=1) if len(gathered) > 1 else gathered[0])
    bounds = np.cumsum([0] + [g.shape[1] for g in gathered])
    return [{k: v[a:b] for k, v in every.items()} for a, b in itertools.pairwise(bounds)]


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
    return pd.DataFrame(feature_arrays(prep, window=window, stats=stats), index=prep.index)


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


def model_matrix(features: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
    """The Isolation Forest input: absolute :data:`IFOREST_FEATURES`, NaN replaced by 0."""
    if isinstance(features, pd.DataFrame):
        matrix = features[list(IFOREST_FEATURES)].to_numpy(dtype="float64")
    else:
        matrix = np.column_stack([features[col] for col in IFOREST_FEATURES])
    return np.abs(np.nan_to_num(matrix))
