"""Seeded, labelled corruptions planted in real bars: the ground truth of the real-data evaluation.

:func:`plant_corruptions` is pure: it copies the bars, plants corruption *events* and returns
the corrupted copy with one label row per corrupted timestamp (columns ``ts``, ``kind``,
``detail``, as :meth:`~quant_pipelines.marketdata.SyntheticSource.bars_with_anomalies`).

Events sit in disjoint blocks of :data:`BLOCK` bars from position ``start`` on, so they never
overlap and every event has untouched bars around it. Kinds are dealt round-robin over the
events (each requested kind appears at least once when there is room) and shuffled; every
random choice comes from ``numpy.random.default_rng(seed)``.

Kinds (:data:`CORRUPTION_KINDS`), each labelled at the bars it changes:

* ``price_x10`` — one bar's open, high, low and close multiplied by 10 (a lost decimal point);
* ``price_div100`` — one bar's OHLC divided by 100 (cents read as dollars, or the reverse);
* ``high_below_low`` — one bar's high and low swapped, so ``high < low`` (when they are equal,
  the high is set 1% below the low);
* ``negative_price`` — one bar's close negated (the low follows it below zero);
* ``stale_run`` — :data:`STALE_LENGTH` consecutive closes equal to the first: the first bar
  keeps its genuine value, the next ``STALE_LENGTH - 1`` get ``open = high = low = close`` =
  that close (volume untouched). The changed bars are labelled, in order, so the ``n``-th label
  of a run is the run's ``n + 1``-th identical close;
* ``dropped_session`` — one row removed; its timestamp is labelled;
* ``zero_volume`` — one bar's volume set to 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.schema import BAR_COLUMNS, make_bars

CORRUPTION_KINDS: tuple[str, ...] = (
    "price_x10",
    "price_div100",
    "high_below_low",
    "negative_price",
    "stale_run",
    "dropped_session",
    "zero_volume",
)
"""Kinds :func:`plant_corruptions` can plant."""

STALE_LENGTH = 7
"""Identical closes in a planted stale run (the genuine first one included)."""

BLOCK = 20
"""Bars reserved per event: the longest event (a stale run) plus clean bars after it."""

WARMUP = 21
"""Default first position that may be corrupted (the features' trailing window plus one)."""

_SCALE = {"price_x10": 10.0, "price_div100": 0.01}


def resolve_corruption_kinds(kinds: Iterable[str] | None) -> tuple[str, ...]:
    """Validate requested kinds.

    Args:
        kinds: Kinds to plant; ``None`` means all of :data:`CORRUPTION_KINDS`.

    Returns:
        The distinct kinds, in the order given.

    Raises:
        ValueError: If a kind is unknown; the message lists the known ones.
    """
    if kinds is None:
        return CORRUPTION_KINDS
    chosen = tuple(dict.fromkeys([kinds] if isinstance(kinds, str) else kinds))
    unknown = [k for k in chosen if k not in CORRUPTION_KINDS]
    if unknown:
        raise ValueError(f"unknown corruption kind(s) {unknown}; known: {list(CORRUPTION_KINDS)}")
    return chosen


def plant_corruptions(
    bars: pd.DataFrame,
    *,
    rate: float = 0.03,
    seed: int = 0,
    kinds: Iterable[str] | None = None,
    start: int = WARMUP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plant seeded, labelled corruptions in a copy of one symbol's bars.

    Args:
        bars: Bars in the bar schema (sorted by time here; the input is not modified).
        rate: Events per eligible bar (the bars from ``start`` on):
            ``round(rate * eligible)`` events, at least one per kind when ``rate > 0``,
            capped at one event per :data:`BLOCK` eligible bars.
        seed: Seed of every random choice (positions, kinds, details).
        kinds: Kinds to plant (``None``: all of :data:`CORRUPTION_KINDS`).
        start: First position (in time order) that may be corrupted.

    Returns:
        ``(corrupted, labels)``: the corrupted bars (sorted; dropped sessions removed) and the
        labels (``ts``, ``kind``, ``detail``) sorted by ``ts``.

    Raises:
        ValueError: If ``rate`` is outside ``[0, 1]``, ``start`` is negative or a kind is
            unknown.
    """
    chosen = resolve_corruption_kinds(kinds)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be within [0, 1], got {rate!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    rng = np.random.default_rng(seed)
    ordered = bars.iloc[np.argsort(bars.index.asi8, kind="stable")]
    values = ordered[list(BAR_COLUMNS)].to_numpy(dtype="float64", copy=True)
    index = ordered.index
    n_blocks = max(0, (len(ordered) - start) // BLOCK)
    wanted = 0 if rate == 0 else max(len(chosen), round(rate * max(len(ordered) - start, 0)))
    n_events = min(wanted, n_blocks)
    blocks = np.sort(rng.choice(n_blocks, size=n_events, replace=False))
    event_kinds = np.resize(np.array(chosen, dtype=object), n_events)
    rng.shuffle(event_kinds)

    keep = np.ones(len(ordered), dtype=bool)
    rows: list[tuple[pd.Timestamp, str, str]] = []
    h, low, c, v = 1, 2, 3, 4  # columns of BAR_COLUMNS
    for block, kind in zip(blocks, event_kinds, strict=True):
        # room for a whole stale run and at least 5 untouched bars after it
        t = start + int(block) * BLOCK + 1 + int(rng.integers(0, BLOCK - STALE_LENGTH - 6))
        bar = values[t]
        if kind in _SCALE:
            bar[:4] *= _SCALE[kind]
            rows.append((index[t], kind, f"open, high, low, close x {_SCALE[kind]:g}"))
        elif kind == "high_below_low":
            hi, lo = bar[h], bar[low]
            bar[h], bar[low] = (lo, hi) if hi > lo else (lo * 0.99, lo)
            rows.append((index[t], kind, f"high {bar[h]:.6g} < low {bar[low]:.6g}"))
        elif kind == "negative_price":
            bar[c] = -abs(bar[c])
            bar[low] = min(bar[low], bar[c])
            rows.append((index[t], kind, f"close set to {bar[c]:.6g}"))
        elif kind == "stale_run":
            stuck = values[t, c]
            values[t + 1 : t + STALE_LENGTH, :4] = stuck
            rows += [
                (index[t + i], kind, f"close {i + 1}/{STALE_LENGTH} of a run at {stuck:.6g}")
                for i in range(1, STALE_LENGTH)
            ]
        elif kind == "dropped_session":
            keep[t] = False
            rows.append((index[t], kind, "row removed"))
        else:  # zero_volume
            bar[v] = 0.0
            rows.append((index[t], kind, "volume set to 0"))

    corrupted = make_bars(index[keep], values[keep])
    labels = pd.DataFrame(rows, columns=["ts", "kind", "detail"])
    labels["ts"] = pd.DatetimeIndex(labels["ts"], tz="UTC").as_unit("ns")
    return corrupted, labels.sort_values("ts", kind="stable").reset_index(drop=True)
