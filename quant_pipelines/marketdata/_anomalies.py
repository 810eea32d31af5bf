"""Injection of labelled anomalies into clean bars (ground truth for the quality detectors).

Events are placed in disjoint blocks of :data:`BLOCK` bars after a warm-up of :data:`WARMUP`
bars, so they never overlap and every event has clean bars before and after it. Kinds are dealt
round-robin over the events, so each requested kind appears at least once when there is room.

Label conventions (one row per labelled timestamp, columns ``ts``, ``kind``, ``detail``):

* ``price_spike`` — the close of one bar jumps 8-12 trailing sigmas (std of the previous 20
  close-to-close log returns) away from the previous close; high/low are widened to stay
  consistent; the next bar is untouched, so the price reverts. Labelled at the spike bar.
* ``stale_price`` — a run of 5-10 bars frozen at the previous bar's close
  (open = high = low = close); EVERY bar of the run is labelled (volume is left unchanged).
* ``volume_burst`` — volume multiplied by 10-30. Labelled at the bar.
* ``missing_bars`` — 1-3 consecutive rows removed; each removed ``ts`` is labelled.
* ``ohlc_inconsistency`` — high set below min(open, close), or low set above max(open, close).
* ``duplicate_bar`` — an exact copy of a row inserted right after it (same ``ts``); labelled once.
* ``non_positive_price`` — close set to zero or a negative value (low lowered to match).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.schema import make_bars

ANOMALY_KINDS: tuple[str, ...] = (
    "price_spike",
    "stale_price",
    "volume_burst",
    "missing_bars",
    "ohlc_inconsistency",
    "duplicate_bar",
    "non_positive_price",
)
"""Kinds of anomaly that :meth:`SyntheticSource.bars_with_anomalies` can inject."""

WARMUP = 21
"""Bars left clean at the start (the trailing window of ``price_spike`` plus one)."""

BLOCK = 14
"""Bars reserved per event (the longest event spans 10 bars)."""

_TRAILING = 20


def resolve_kinds(kinds: Iterable[str] | None) -> tuple[str, ...]:
    """Validate the requested kinds.

    Args:
        kinds: Kinds to inject; ``None`` means all of :data:`ANOMALY_KINDS`.

    Returns:
        The distinct kinds, in the order given.

    Raises:
        ValueError: If a kind is unknown; the message lists the known ones.
    """
    if kinds is None:
        return ANOMALY_KINDS
    if isinstance(kinds, str):
        kinds = [kinds]
    chosen = tuple(dict.fromkeys(kinds))
    unknown = [k for k in chosen if k not in ANOMALY_KINDS]
    if unknown:
        raise ValueError(f"unknown anomaly kind(s) {unknown}; known: {list(ANOMALY_KINDS)}")
    return chosen


def empty_labels() -> pd.DataFrame:
    """An empty label frame (columns ``ts``, ``kind``, ``detail``)."""
    return pd.DataFrame(
        {
            "ts": pd.Series([], dtype="datetime64[ns, UTC]"),
            "kind": pd.Series([], dtype="object"),
            "detail": pd.Series([], dtype="object"),
        }
    )


def inject_anomalies(
    bars: pd.DataFrame,
    *,
    rate: float,
    kinds: Iterable[str] | None,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inject anomalies into clean, sorted bars.

    Args:
        bars: Clean bars in the bar schema.
        rate: Target events per bar; ``round(rate * len(bars))`` events, at least one per kind
            when ``rate > 0``, capped by the room available (one event per :data:`BLOCK` bars).
        kinds: Kinds to inject (``None``: all).
        rng: Random generator (the only source of randomness).

    Returns:
        ``(bars, labels)``; labels sorted by ``ts``.

    Raises:
        ValueError: If ``rate`` is outside ``[0, 1]`` or a kind is unknown.
    """
    chosen = resolve_kinds(kinds)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be within [0, 1], got {rate!r}")
    n = len(bars)
    n_blocks = max(0, (n - WARMUP) // BLOCK)
    wanted = 0 if rate == 0 or not chosen else max(len(chosen), round(rate * n))
    n_events = min(wanted, n_blocks)
    blocks = np.sort(rng.choice(n_blocks, size=n_events, replace=False))
    event_kinds = np.resize(np.array(chosen, dtype=object), n_events)
    rng.shuffle(event_kinds)

    o, h, low, c, v = (bars[col].to_numpy(dtype="float64", copy=True) for col in bars.columns)
    clean_close = c.copy()
    index = bars.index
    counts = np.ones(n, dtype=np.int64)
    rows: list[tuple[pd.Timestamp, str, str]] = []
    for block, kind in zip(blocks, event_kinds, strict=True):
        t = WARMUP + int(block) * BLOCK + int(rng.integers(0, 3))
        if kind == "price_spike":
            log_ret = np.diff(np.log(clean_close[t - _TRAILING - 1 : t]))
            sigma = float(np.std(log_ret, ddof=1))
            k, sign = rng.uniform(8.0, 12.0), rng.choice([-1.0, 1.0])
            c[t] = c[t - 1] * np.exp(sign * k * sigma)
            h[t], low[t] = max(h[t], c[t]), min(low[t], c[t])
            detail = f"close {'up' if sign > 0 else 'down'} {k:.1f} trailing sigmas"
            rows.append((index[t], kind, detail))
        elif kind == "stale_price":
            length = int(rng.integers(5, 11))
            stuck = c[t - 1]
            o[t : t + length] = h[t : t + length] = stuck
            low[t : t + length] = c[t : t + length] = stuck
            rows += [
                (index[t + i], kind, f"bar {i + 1}/{length} frozen at {stuck:.6g}")
                for i in range(length)
            ]
        elif kind == "volume_burst":
            factor = rng.uniform(10.0, 30.0)
            v[t] *= factor
            rows.append((index[t], kind, f"volume x{factor:.1f}"))
        elif kind == "missing_bars":
            length = int(rng.integers(1, 4))
            counts[t : t + length] = 0
            rows += [(index[t + i], kind, f"bar {i + 1}/{length} removed") for i in range(length)]
        elif kind == "ohlc_inconsistency":
            if rng.random() < 0.5:
                h[t] = min(o[t], c[t]) * 0.995
                rows.append((index[t], kind, "high below min(open, close)"))
            else:
                low[t] = max(o[t], c[t]) * 1.005
                rows.append((index[t], kind, "low above max(open, close)"))
        elif kind == "duplicate_bar":
            counts[t] = 2
            rows.append((index[t], kind, "row repeated with the same ts"))
        else:  # non_positive_price
            c[t] = 0.0 if rng.random() < 0.5 else -c[t] * rng.uniform(0.01, 1.0)
            low[t] = min(low[t], c[t])
            rows.append((index[t], kind, f"close set to {c[t]:.6g}"))

    keep = np.repeat(np.arange(n), counts)
    out = make_bars(index[keep], np.column_stack([o, h, low, c, v])[keep])
    if not rows:
        return out, empty_labels()
    labels = pd.DataFrame(rows, columns=["ts", "kind", "detail"])
    labels["ts"] = pd.DatetimeIndex(labels["ts"]).as_unit("ns")
    return out, labels.sort_values("ts", kind="stable").reset_index(drop=True)
