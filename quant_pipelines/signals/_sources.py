"""Bar series for :mod:`quant_pipelines.signals.evaluation`: a directory of files or synthetic."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

SYNTHETIC_START = "2000-01-03"
SYNTHETIC_END = "2020-12-31"
"""Default span of the synthetic series (the measurement in ``docs/signals.md``)."""


def _clean(bars: pd.DataFrame) -> pd.DataFrame:
    """Time-ordered bars with one row per timestamp and a finite, positive close."""
    bars = bars.loc[~bars.index.duplicated(keep="last")].sort_index()
    close = bars["close"].to_numpy(dtype=np.float64)
    return bars.loc[np.isfinite(close) & (close > 0)]


def load_series(
    source: str | Path | None = None,
    *,
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame] | None]:
    """Bar series to evaluate, and their true regimes when they are known.

    Args:
        source: Directory of per-symbol CSV / Parquet bars (read with
            :class:`~quant_pipelines.marketdata.FileSource`); ``None`` for
            :class:`~quant_pipelines.marketdata.SyntheticSource`.
        symbols: Symbols to load (default: every file, or every synthetic symbol).
        start: First date (default: the whole file, or :data:`SYNTHETIC_START`).
        end: Last date (default: the whole file, or :data:`SYNTHETIC_END`).
        seeds: Seeds of the synthetic source; each symbol is loaded once per seed, keyed
            ``"SYMBOL/seed"`` (the default reproduces the measurement in ``docs/signals.md``).

    Returns:
        ``(bars, truths)``: symbol -> bars, and symbol -> true regimes (synthetic only, else
        ``None``). File bars are sorted, de-duplicated (last row wins) and stripped of rows
        without a finite, positive close.

    Raises:
        FileSourceError: If the directory or a symbol's file is missing or malformed.
        ValueError: If no bars remain.
    """
    from quant_pipelines.marketdata import FileSource, SyntheticSource

    bars: dict[str, pd.DataFrame] = {}
    if source is None:
        lo, hi = start or SYNTHETIC_START, end or SYNTHETIC_END
        truths: dict[str, pd.DataFrame] = {}
        for seed in seeds:
            synth = SyntheticSource(int(seed))
            for s in list(symbols) if symbols else synth.symbols():
                bars[f"{s}/{seed}"] = synth.bars(s, lo, hi)
                truths[f"{s}/{seed}"] = synth.regimes(s, lo, hi)
        _check_nonempty(bars, "the synthetic source")
        return bars, truths
    files = FileSource(source)
    for s in list(symbols) if symbols else files.symbols():
        if start is None and end is None:
            frame = files.read(s)
        else:
            frame = files.bars(s, start or "1900-01-01", end or "2200-12-31")
        bars[s] = _clean(frame)
    _check_nonempty(bars, str(source))
    return bars, None


def _check_nonempty(bars: dict[str, pd.DataFrame], where: str) -> None:
    if not any(len(b) for b in bars.values()):
        raise ValueError(f"no bars for {sorted(bars)} in {where}")
