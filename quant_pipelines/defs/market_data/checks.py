"""The asset checks of ``market_bars``: specs, and the service's outcomes as check results."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from quant_pipelines.services._ingest_checks import CheckOutcome

_MAX_LISTED = 50
_DESCRIPTIONS = {
    "bars_have_valid_ohlc": (
        "Prices are positive and finite, high/low bracket open and close, volume is not "
        "negative. Blocks downstream assets."
    ),
    "bars_have_no_duplicates": "No two bars share (symbol, ts). Blocks downstream assets.",
    "bars_cover_the_session": "Every bar the exchange calendar expects is present.",
    "bars_are_fresh": (
        "Each symbol's newest stored bar is within one session of the last close (the "
        "asset's freshness policy sees only when it was materialized)."
    ),
}
_BLOCKING = {"bars_have_valid_ohlc", "bars_have_no_duplicates"}
_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The four check specs of a ``market_bars`` asset; the gates are blocking."""
    return [
        dg.AssetCheckSpec(name, asset=key, description=text, blocking=name in _BLOCKING)
        for name, text in _DESCRIPTIONS.items()
    ]


def _rows_table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    frame = frame.head(_MAX_LISTED)
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), "string") for c in frame.columns])
    records = [
        dg.TableRecord({str(k): "" if pd.isna(v) else str(v) for k, v in row.items()})
        for row in frame.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def _number(value: float) -> dg.MetadataValue:
    is_int = isinstance(value, int)
    return dg.MetadataValue.int(value) if is_int else dg.MetadataValue.float(float(value))


def check_result(key: dg.AssetKey, outcome: CheckOutcome) -> dg.AssetCheckResult:
    """The check result of ``outcome``: observed values, thresholds, offending rows."""
    metadata: dict[str, dg.MetadataValue] = {
        name: _number(value) for name, value in {**outcome.observed, **outcome.thresholds}.items()
    }
    metadata.update({name: _rows_table(t) for name, t in outcome.tables.items() if len(t)})
    metadata.update({name: dg.MetadataValue.json(v) for name, v in outcome.details.items()})
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=_SEVERITY[outcome.severity],
        metadata=metadata,
        description=outcome.description,
    )
