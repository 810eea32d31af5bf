"""The checks of an ingestion: each outcome carries its observed value and its threshold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from quant_pipelines.marketdata import issues_frame, sessions
from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.marketdata.ingest import OHLC_RULES, PreparedBars
from quant_pipelines.storage.bars import BarsRepository

#: A symbol whose newest bar is more than this many sessions old is stale.
FRESHNESS_MAX_LAG_SESSIONS = 1
#: Share of expected bars that may be missing before ``bars_cover_the_session`` warns.
COVERAGE_MAX_MISSING_FRACTION = 0.0


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result, free of Dagster types.

    Attributes:
        name: The check's name (a predicate, e.g. ``bars_have_valid_ohlc``).
        passed: Whether the observed values are within the thresholds.
        severity: ``error`` (a gate) or ``warn``.
        observed: Observed values by name.
        thresholds: The threshold each observed value is compared with.
        tables: Offending rows, by name (at most a few dozen rows shown).
        details: Further JSON-able facts.
        description: A one-line explanation when the check fails.
    """

    name: str
    passed: bool
    severity: Literal["error", "warn"]
    observed: dict[str, int | float]
    thresholds: dict[str, int | float]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


def valid_ohlc(prepared: list[PreparedBars]) -> CheckOutcome:
    """Prices positive and finite, high/low bracketing open/close, volume not negative."""
    bad = [i for p in prepared for i in p.issues if i.rule in OHLC_RULES]
    rows = {(i.symbol, i.ts) for i in bad}
    return CheckOutcome(
        "bars_have_valid_ohlc",
        passed=not bad,
        severity="error",
        observed={"invalid_rows": len(rows)},
        thresholds={"threshold_invalid_rows": 0},
        tables={"offending_rows": issues_frame(bad)},
        description=None if not bad else f"{len(rows)} bar(s) break OHLC rules",
    )


def no_duplicates(prepared: list[PreparedBars], bars: BarsRepository) -> CheckOutcome:
    """No two bars share (symbol, ts), neither in the input nor in MongoDB."""
    in_input = sum(len(p.duplicates) for p in prepared)
    stored = [p for p in prepared if len(p.bars)]
    lo = min((p.bars.index.min() for p in stored), default=None)
    hi = max((p.bars.index.max() for p in stored), default=None)
    in_db = bars.duplicate_keys([p.symbol for p in stored], lo, hi) if stored else []
    dupes = pd.concat(
        [p.duplicates.assign(symbol=p.symbol) for p in prepared if len(p.duplicates)]
        or [pd.DataFrame(columns=["symbol"])]
    ).reset_index(names="ts")
    return CheckOutcome(
        "bars_have_no_duplicates",
        passed=in_input == 0 and not in_db,
        severity="error",
        observed={"duplicate_rows_in_source": in_input, "duplicate_keys_in_mongodb": len(in_db)},
        thresholds={"threshold_duplicates": 0},
        tables={"duplicates": dupes[["symbol", "ts"]] if len(dupes) else dupes},
    )


def coverage(prepared: list[PreparedBars]) -> CheckOutcome:
    """Every bar the exchange calendar expects is present."""
    expected = sum(p.expected for p in prepared)
    missing = sum(len(p.missing) for p in prepared)
    fraction = missing / expected if expected else 0.0
    listing = pd.DataFrame(
        [(p.symbol, ts.isoformat()) for p in prepared for ts in p.missing],
        columns=["symbol", "ts"],
    )
    return CheckOutcome(
        "bars_cover_the_session",
        passed=fraction <= COVERAGE_MAX_MISSING_FRACTION,
        severity="warn",
        observed={
            "expected_bars": expected,
            "missing_bars": missing,
            "missing_fraction": round(fraction, 6),
        },
        thresholds={"threshold_missing_fraction": COVERAGE_MAX_MISSING_FRACTION},
        tables={"missing": listing},
    )


def closed_sessions_since(asset_class: str, since: pd.Timestamp, now: pd.Timestamp) -> int:
    """Sessions labelled after ``since`` whose close is at or before ``now``."""
    labels = sessions(asset_class, since + pd.Timedelta(days=1), now.date())
    if not len(labels):
        return 0
    _, closes = session_bounds(asset_class, labels)
    closes = closes.tz_localize("UTC") if closes.tz is None else closes
    return int((closes <= now).sum())


def per_symbol_freshness(
    asset_class: str, prepared: list[PreparedBars], bars: BarsRepository, now: pd.Timestamp
) -> CheckOutcome:
    """Each symbol's newest stored bar is within one session of the last close.

    The asset's freshness policy only sees when the asset was last materialized; this sees
    each symbol's data (a backfill of old sessions, or a symbol the source stopped sending).
    """
    newest = bars.newest_valid_ts([p.symbol for p in prepared])
    lags: dict[str, int | None] = {}
    for symbol, ts in newest.items():
        if ts is None:
            lags[symbol] = None
            continue
        label = pd.Timestamp(ts).tz_convert("UTC").tz_localize(None).normalize()
        lags[symbol] = closed_sessions_since(asset_class, label, now)
    worst = max((lag for lag in lags.values() if lag is not None), default=0)
    without = sum(v is None for v in lags.values())
    return CheckOutcome(
        "bars_are_fresh",
        passed=bool(lags) and not without and worst <= FRESHNESS_MAX_LAG_SESSIONS,
        severity="warn",
        observed={"max_lag_sessions": worst, "symbols_without_bars": without},
        thresholds={"threshold_lag_sessions": FRESHNESS_MAX_LAG_SESSIONS},
        details={"lag_by_symbol": lags, "evaluated_at": now.isoformat()},
        description=None if lags else f"the universe has no {asset_class} symbol",
    )


def evaluate_checks(
    asset_class: str, prepared: list[PreparedBars], bars: BarsRepository, *, now: pd.Timestamp
) -> list[CheckOutcome]:
    """Every check of a ``market_bars`` materialization, gates first."""
    return [
        valid_ohlc(prepared),
        no_duplicates(prepared, bars),
        coverage(prepared),
        per_symbol_freshness(asset_class, prepared, bars, now),
    ]
