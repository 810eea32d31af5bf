"""The asset checks of ``market_bars``: each reports its observed value and its threshold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from quant_pipelines.marketdata import issues_frame, sessions
from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.marketdata.ingest import OHLC_RULES, PreparedBars
from quant_pipelines.storage import BarsRepository

#: A symbol whose newest bar is more than this many sessions old is stale.
FRESHNESS_MAX_LAG_SESSIONS = 1
#: Share of expected bars that may be missing before ``bars_cover_the_session`` warns.
COVERAGE_MAX_MISSING_FRACTION = 0.0
_MAX_LISTED = 50

_DESCRIPTIONS = {
    "bars_have_valid_ohlc": (
        "Prices are positive and finite, high/low bracket open and close, volume is not "
        "negative. Blocks downstream assets."
    ),
    "bars_have_no_duplicates": "No two bars share (symbol, ts). Blocks downstream assets.",
    "bars_cover_the_session": "Every bar the exchange calendar expects is present.",
    "bars_are_fresh": (
        "The newest stored bar of each symbol is within one session of the last close."
    ),
}
_BLOCKING = {"bars_have_valid_ohlc", "bars_have_no_duplicates"}


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The four check specs of a ``market_bars`` asset."""
    return [
        dg.AssetCheckSpec(name, asset=key, description=text, blocking=name in _BLOCKING)
        for name, text in _DESCRIPTIONS.items()
    ]


def rule_totals(prepared: list[PreparedBars]) -> dict[str, int]:
    """Issue counts per validation rule over all symbols."""
    total: Counter[str] = Counter()
    for p in prepared:
        total.update(p.rule_counts())
    return dict(total)


def _rows_table(frame: pd.DataFrame) -> dg.MetadataValue:
    frame = frame.head(_MAX_LISTED)
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), "string") for c in frame.columns])
    records = [
        dg.TableRecord({str(k): "" if pd.isna(v) else str(v) for k, v in row.items()})
        for row in frame.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def _valid_ohlc(key: dg.AssetKey, prepared: list[PreparedBars]) -> dg.AssetCheckResult:
    bad = [i for p in prepared for i in p.issues if i.rule in OHLC_RULES]
    rows = {(i.symbol, i.ts) for i in bad}
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="bars_have_valid_ohlc",
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "invalid_rows": dg.MetadataValue.int(len(rows)),
            "threshold_invalid_rows": dg.MetadataValue.int(0),
            "offending_rows": _rows_table(issues_frame(bad)),
        },
        description=None if not bad else f"{len(rows)} bar(s) break OHLC rules",
    )


def _no_duplicates(
    key: dg.AssetKey, prepared: list[PreparedBars], repo: BarsRepository
) -> dg.AssetCheckResult:
    in_input = sum(len(p.duplicates) for p in prepared)
    symbols = [p.symbol for p in prepared if len(p.bars)]
    lo = min((p.bars.index.min() for p in prepared if len(p.bars)), default=None)
    hi = max((p.bars.index.max() for p in prepared if len(p.bars)), default=None)
    stored = []
    if symbols:
        stored = list(
            repo.collection.aggregate(
                [
                    {"$match": {"symbol": {"$in": symbols}, "ts": {"$gte": lo, "$lte": hi}}},
                    {"$group": {"_id": {"symbol": "$symbol", "ts": "$ts"}, "n": {"$sum": 1}}},
                    {"$match": {"n": {"$gt": 1}}},
                ]
            )
        )
    dupes = pd.concat(
        [p.duplicates.assign(symbol=p.symbol) for p in prepared if len(p.duplicates)]
        or [pd.DataFrame(columns=["symbol"])]
    ).reset_index(names="ts")
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="bars_have_no_duplicates",
        passed=in_input == 0 and not stored,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "duplicate_rows_in_source": dg.MetadataValue.int(in_input),
            "duplicate_keys_in_mongodb": dg.MetadataValue.int(len(stored)),
            "threshold_duplicates": dg.MetadataValue.int(0),
            "duplicates": _rows_table(dupes[["symbol", "ts"]] if len(dupes) else dupes),
        },
    )


def _coverage(key: dg.AssetKey, prepared: list[PreparedBars]) -> dg.AssetCheckResult:
    expected = sum(p.expected for p in prepared)
    missing = sum(len(p.missing) for p in prepared)
    fraction = missing / expected if expected else 0.0
    listing = pd.DataFrame(
        [(p.symbol, ts.isoformat()) for p in prepared for ts in p.missing],
        columns=["symbol", "ts"],
    )
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="bars_cover_the_session",
        passed=fraction <= COVERAGE_MAX_MISSING_FRACTION,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "expected_bars": dg.MetadataValue.int(expected),
            "missing_bars": dg.MetadataValue.int(missing),
            "missing_fraction": dg.MetadataValue.float(round(fraction, 6)),
            "threshold_missing_fraction": dg.MetadataValue.float(COVERAGE_MAX_MISSING_FRACTION),
            "missing": _rows_table(listing),
        },
    )


def _closed_sessions_since(asset_class: str, since: pd.Timestamp, now: pd.Timestamp) -> int:
    """Sessions labelled after ``since`` whose close is at or before ``now``."""
    labels = sessions(asset_class, since + pd.Timedelta(days=1), now.date())
    if not len(labels):
        return 0
    _, closes = session_bounds(asset_class, labels)
    closes = closes.tz_localize("UTC") if closes.tz is None else closes
    return int((closes <= now).sum())


def _freshness(
    key: dg.AssetKey, prepared: list[PreparedBars], repo: BarsRepository, now: pd.Timestamp
) -> dg.AssetCheckResult:
    asset_class = key.path[-1]
    lags: dict[str, int | None] = {}
    for p in prepared:
        newest = repo.collection.find_one(
            {"symbol": p.symbol, "valid": {"$ne": False}}, {"ts": 1}, sort=[("ts", -1)]
        )
        if newest is None:
            lags[p.symbol] = None
            continue
        label = pd.Timestamp(newest["ts"]).tz_convert("UTC").tz_localize(None).normalize()
        lags[p.symbol] = _closed_sessions_since(asset_class, label, now)
    known = [lag for lag in lags.values() if lag is not None]
    worst = max(known, default=0)
    passed = bool(lags) and None not in lags.values() and worst <= FRESHNESS_MAX_LAG_SESSIONS
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="bars_are_fresh",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "max_lag_sessions": dg.MetadataValue.int(worst),
            "threshold_lag_sessions": dg.MetadataValue.int(FRESHNESS_MAX_LAG_SESSIONS),
            "lag_by_symbol": dg.MetadataValue.json(lags),
            "symbols_without_bars": dg.MetadataValue.int(sum(v is None for v in lags.values())),
            "evaluated_at": dg.MetadataValue.text(now.isoformat()),
        },
    )


def evaluate(
    key: dg.AssetKey, prepared: list[PreparedBars], repo: BarsRepository, *, now: pd.Timestamp
) -> Iterator[dg.AssetCheckResult]:
    """Evaluates every check of a ``market_bars`` materialization."""
    yield _valid_ohlc(key, prepared)
    yield _no_duplicates(key, prepared, repo)
    yield _coverage(key, prepared)
    yield _freshness(key, prepared, repo, now)
