"""Prophet's component indicator table, computed once per configuration. Private module.

Every ``fit`` and every ``predict`` (three times per refit of a model: its fit, then two
passes inside the interval table's ``predict``) rebuilds the table that maps seasonal feature
columns to components, with ``pd.crosstab`` and a few concatenations: about 30 ms per call
for a table that depends only on the feature columns' names, the seasonality modes, the
holidays and regressors, and the training table it is checked against. That was a third of a
weekly refit's time.

:func:`install` binds, on one model instance, a ``regressor_column_matrix`` that computes the
table with Prophet's own method the first time a configuration is met and hands out copies
afterwards, with the same side effect on ``modes`` (Prophet appends the group components to
it). Nothing changes for Prophet's numbers: the table is Prophet's, computed by Prophet,
and equal inputs give equal tables (the tests compare fits and predictions with and without).
The binding is an instance attribute, so ``model_to_json`` never sees it; models read back
from JSON are bound again by the loader.
"""

from __future__ import annotations

import threading
from types import MethodType
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from prophet import Prophet

_MAX_ENTRIES = 256
_CACHE: dict[tuple[Any, ...], tuple[pd.DataFrame, dict[str, tuple[str, ...]]]] = {}
_LOCK = threading.Lock()


def _key(model: Prophet, seasonal_features: pd.DataFrame, modes: dict[str, list[str]]) -> tuple:
    """Everything Prophet's ``regressor_column_matrix`` reads."""
    train = model.train_component_cols
    holidays = model.train_holiday_names
    return (
        tuple(seasonal_features.columns),
        tuple((m, tuple(v)) for m, v in sorted(modes.items())),
        None if holidays is None else tuple(pd.unique(holidays)),
        tuple((r, p["mode"]) for r, p in model.extra_regressors.items()),
        model.holidays_mode,
        None
        if train is None
        else (
            tuple(train.columns),
            train.columns.name,
            tuple(train.index),
            train.index.name,
            tuple(map(str, train.dtypes)),
            train.to_numpy().tobytes(),
        ),
    )


def _cached(
    self: Prophet, seasonal_features: pd.DataFrame, modes: dict[str, list[str]]
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Prophet's ``regressor_column_matrix``, each configuration computed once."""
    from prophet import Prophet

    key = _key(self, seasonal_features, modes)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is None:
        before = {m: list(v) for m, v in modes.items()}
        table, modes = Prophet.regressor_column_matrix(self, seasonal_features, modes)
        added = {m: tuple(modes[m][len(before.get(m, [])) :]) for m in modes}
        with _LOCK:
            if len(_CACHE) >= _MAX_ENTRIES:
                _CACHE.clear()
            _CACHE[key] = (table.copy(), added)
        return table, modes
    table, added = hit
    for mode, names in added.items():
        modes.setdefault(mode, []).extend(names)
    return table.copy(), modes


def install(model: Prophet) -> Prophet:
    """Binds the cached component table on ``model`` (see the module doc); returns it."""
    model.regressor_column_matrix = MethodType(_cached, model)
    return model
