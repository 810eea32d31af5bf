"""Every partitions definition of the project, in one place.

Market data is partitioned by trading day, one definition per asset class, because each
class has its own calendar: equities skip XNYS weekends and holidays (America/New_York
dates), FX runs 24/5 and crypto 24/7 (UTC dates). A partition key is a session label
``YYYY-MM-DD``.

Partitions keyed by symbol are dynamic (``symbol_partitions``): the universe is never read at
import time; ``universe_symbols_sensor`` (defs/automation.py) keeps them equal to the
``UniverseResource``'s symbols. Studies are partitioned by (strategy, asset class).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import dagster as dg
import pandas as pd

from quant_pipelines.backtest import list_strategies
from quant_pipelines.backtest.portfolio.strategies import PORTFOLIO_STRATEGIES
from quant_pipelines.marketdata import ASSET_CLASSES
from quant_pipelines.marketdata.calendars import ASSET_CLASS_CALENDARS, non_session_weekdays

#: First partition of every market-data asset.
PARTITIONS_START = "2018-01-01"
#: Holidays are excluded this many days past today (definitions reload daily anyway).
_EXCLUSION_HORIZON_DAYS = 800

_CRON = {"equity": "0 0 * * 1-5", "fx": "0 0 * * 1-5", "crypto": "0 0 * * *"}
_TIMEZONE = {"equity": "America/New_York", "fx": "UTC", "crypto": "UTC"}

#: Name of the dynamic partitions holding the universe's symbols.
SYMBOL_PARTITIONS = "universe_symbols"
#: One partition per symbol of the universe, added and removed by ``universe_symbols_sensor``.
symbol_partitions = dg.DynamicPartitionsDefinition(name=SYMBOL_PARTITIONS)


@lru_cache(maxsize=8)
def trading_day_partitions(asset_class: str) -> dg.TimeWindowPartitionsDefinition:
    """Trading-day partitions of one asset class; exchange holidays are excluded.

    The partition of the current day exists (``end_offset=1``) so that the after-close
    schedule can ingest today's session once it has closed.

    Args:
        asset_class: ``equity``, ``fx`` or ``crypto``.

    Returns:
        A time-window partitions definition whose keys are session labels.
    """
    if asset_class not in ASSET_CLASS_CALENDARS:
        raise ValueError(
            f"unknown asset class {asset_class!r}; known: {sorted(ASSET_CLASS_CALENDARS)}"
        )
    horizon = (dt.date.today() + dt.timedelta(days=_EXCLUSION_HORIZON_DAYS)).isoformat()
    holidays = non_session_weekdays(ASSET_CLASS_CALENDARS[asset_class], PARTITIONS_START, horizon)
    return dg.TimeWindowPartitionsDefinition(
        start=PARTITIONS_START,
        fmt="%Y-%m-%d",
        cron_schedule=_CRON[asset_class],
        timezone=_TIMEZONE[asset_class],
        end_offset=1,
        exclusions=[
            pd.Timestamp(day).tz_localize(_TIMEZONE[asset_class]).to_pydatetime()
            for day in holidays
        ]
        or None,
    )


def partition_keys_between(asset_class: str, start: str, end: str) -> list[str]:
    """The partition keys of ``asset_class`` from ``start`` to ``end`` inclusive."""
    keys = trading_day_partitions(asset_class).get_partition_keys()
    return [k for k in keys if start <= k <= end]


#: One study per (strategy, asset class): the registered strategies and the project's classes.
optimization_partitions = dg.MultiPartitionsDefinition(
    {
        # Single-asset strategies, then the portfolio strategies that are not a single-asset
        # signal (``signal_<name>`` studies run on the ``<name>`` partition, portfolio: true).
        "strategy": dg.StaticPartitionsDefinition(
            [*list_strategies(), *(s for s in PORTFOLIO_STRATEGIES if not s.startswith("signal_"))]
        ),
        "asset_class": dg.StaticPartitionsDefinition(list(ASSET_CLASSES)),
    }
)
