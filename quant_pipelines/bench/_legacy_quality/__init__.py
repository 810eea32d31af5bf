"""Frozen copy of the sentinel's scorer at commit a50cefb (bench-only; nothing else imports it).

``quant_pipelines.bench.quality`` times today's scorer against this copy on the same bars in the
same process. The modules are the committed versions of ``quant_pipelines/quality/{_prepare,
_robust,features,iforest,prophet_models,rules,scoring,severity}.py`` and
``quant_pipelines/marketdata/calendars.py``, with only their imports pointed here (and the
scorer's feature columns named instead of sliced out of ``SCORE_COLUMNS``). Do not edit
them: refresh the copy with ``git show <commit>:<path>`` when the reference should move.
"""

from __future__ import annotations

from quant_pipelines.bench._legacy_quality.scoring import SymbolModels, fit_models, score_bars
from quant_pipelines.bench._legacy_quality.severity import DEFAULT_THRESHOLDS

__all__ = ["DEFAULT_THRESHOLDS", "SymbolModels", "fit_models", "score_bars"]
