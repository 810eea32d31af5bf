"""Market data: the bar schema and its validation, calendars, the universe, and bar sources.

Pure domain code (numpy, pandas, exchange_calendars, yaml, pyarrow): no Dagster, no database.

* :mod:`~quant_pipelines.marketdata.schema` — the OHLCV bar contract;
* :mod:`~quant_pipelines.marketdata.calendars` — sessions and expected bar timestamps;
* :mod:`~quant_pipelines.marketdata.validate` — rule-based data-quality checks;
* :mod:`~quant_pipelines.marketdata.universe` — symbols and the packaged default universe;
* :mod:`~quant_pipelines.marketdata.synthetic` — deterministic synthetic bars, true regimes and
  labelled anomalies;
* :mod:`~quant_pipelines.marketdata.files` — bars from per-symbol CSV/Parquet files.
"""

from __future__ import annotations

from quant_pipelines.marketdata._anomalies import ANOMALY_KINDS
from quant_pipelines.marketdata.calendars import (
    ASSET_CLASS_CALENDARS,
    bar_times,
    get_calendar,
    is_session_open,
    next_session_close,
    next_session_open,
    non_session_weekdays,
    sessions,
)
from quant_pipelines.marketdata.files import FileSource, FileSourceError
from quant_pipelines.marketdata.schema import (
    BAR_COLUMNS,
    BarSchemaError,
    empty_bars,
    normalize_bars,
)
from quant_pipelines.marketdata.synthetic import SyntheticSource
from quant_pipelines.marketdata.universe import (
    ASSET_CLASSES,
    Symbol,
    Universe,
    UniverseError,
    load_universe,
)
from quant_pipelines.marketdata.validate import (
    RULES,
    ValidationIssue,
    issues_frame,
    missing_bars,
    validate_bars,
)

__all__ = [
    "ANOMALY_KINDS",
    "ASSET_CLASSES",
    "ASSET_CLASS_CALENDARS",
    "BAR_COLUMNS",
    "RULES",
    "BarSchemaError",
    "FileSource",
    "FileSourceError",
    "Symbol",
    "SyntheticSource",
    "Universe",
    "UniverseError",
    "ValidationIssue",
    "bar_times",
    "empty_bars",
    "get_calendar",
    "is_session_open",
    "issues_frame",
    "load_universe",
    "missing_bars",
    "next_session_close",
    "next_session_open",
    "non_session_weekdays",
    "normalize_bars",
    "sessions",
    "validate_bars",
]
