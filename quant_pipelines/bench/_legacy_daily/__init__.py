"""Frozen copy of the sentinel's daily scorer at commit d7a2532 (before the stored forecast band).

``quant_pipelines.bench.quality`` times today's batched daily path against this copy (the
per-symbol loop that predicted Prophet every day), and the quality tests use it as the oracle
that the faster scorer changed no score, bit for bit. The modules are the committed versions of
``quant_pipelines/quality/{scoring,_prepare,_robust,features,iforest,prophet_models,
_prophet_predict,rules,severity,_kinds,_jumps,_models,_schedule,market_events}.py`` with only
their ``quant_pipelines.quality`` imports pointed here (and re-sorted by ruff; ``marketdata``
is imported as it is). Do not edit them: refresh the copy with ``git show <commit>:<path>``
when the reference should move.
"""

from __future__ import annotations

from quant_pipelines.bench._legacy_daily._schedule import ModelSchedule, fit_schedule
from quant_pipelines.bench._legacy_daily.iforest import IForestModel
from quant_pipelines.bench._legacy_daily.market_events import mark_market_events
from quant_pipelines.bench._legacy_daily.prophet_models import ProphetModels
from quant_pipelines.bench._legacy_daily.scoring import SymbolModels, fit_models, score_bars
from quant_pipelines.bench._legacy_daily.severity import DEFAULT_THRESHOLDS

__all__ = [
    "DEFAULT_THRESHOLDS",
    "IForestModel",
    "ModelSchedule",
    "ProphetModels",
    "SymbolModels",
    "fit_models",
    "fit_schedule",
    "mark_market_events",
    "score_bars",
]
