"""Prophet's point forecast ``yhat`` without its DataFrame machinery. Private module.

``Prophet.predict`` with ``uncertainty_samples=0`` spends nearly all its time on pandas
bookkeeping that does not change the numbers: validating and copying the frame, building the
component indicator table with ``pd.crosstab`` (which always ends up equal to the model's
``train_component_cols``), and assembling the output frame. :func:`fast_yhat` runs the same
arithmetic, in the same order, on the same array shapes and memory layouts (Prophet's own
static ``fourier_series`` and ``piecewise_linear``, the seasonal feature matrix built by
``pd.concat(...).values`` as Prophet builds it, the same ``np.matmul`` and ``np.nanmean``), so
``yhat`` is bit for bit what ``predict`` returns (the tests compare the two).

Only the configuration this package fits is handled: linear or flat growth, seasonalities
without conditions, no holidays and no extra regressors. :func:`fast_yhat` returns None for
any other model and the caller runs ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from prophet import Prophet


def supported(model: Prophet) -> bool:
    """Whether :func:`fast_yhat` reproduces ``predict`` for this model."""
    return (
        model.history is not None
        and model.growth in ("linear", "flat")
        and not model.logistic_floor
        and model.scaling in ("absmax", "minmax")
        and model.holidays is None
        and model.country_holidays is None
        and not model.extra_regressors
        and model.train_component_cols is not None
        and all(props["condition_name"] is None for props in model.seasonalities.values())
    )


@dataclass(frozen=True)
class _Constants:
    """What ``predict`` derives from the fitted model alone, the same way at every call."""

    changepoints_t: np.ndarray
    k: float
    m: float
    deltas: np.ndarray | None
    floor: float
    beta: dict[str, np.ndarray]


_CONSTANTS: WeakKeyDictionary[Prophet, _Constants | None] = WeakKeyDictionary()


def _constants(model: Prophet) -> _Constants | None:
    """The model's constants (None when not :func:`supported`), computed once per model.

    A Prophet model is fitted once and not changed by prediction, so they stay valid.
    """
    if model in _CONSTANTS:
        return _CONSTANTS[model]
    consts = None
    if supported(model):
        if len(model.changepoints) > 0:  # setup_dataframe recomputes them at every predict
            changepoints_t = np.sort(np.array((model.changepoints - model.start) / model.t_scale))
        else:
            changepoints_t = np.array([0])
        beta = {}
        for component in ("additive_terms", "multiplicative_terms"):  # as the loop over
            # component_cols (== train_component_cols after predict's check) computes them
            beta[component] = (
                model.params["beta"] * model.train_component_cols[component].values
            ).transpose()
        consts = _Constants(
            changepoints_t=changepoints_t,
            k=np.nanmean(model.params["k"]),
            m=np.nanmean(model.params["m"]),
            deltas=np.nanmean(model.params["delta"], axis=0) if model.growth == "linear" else None,
            floor=0.0 if model.scaling == "absmax" else model.y_min,
            beta=beta,
        )
    _CONSTANTS[model] = consts
    return consts


def fast_yhat(model: Prophet, ds: np.ndarray) -> np.ndarray | None:
    """``predict``'s ``yhat`` at sorted, distinct ``ds`` (tz-naive ``datetime64[ns]``).

    Args:
        model: A fitted Prophet model.
        ds: Sorted, distinct, non-empty timestamps (``predict`` sorts; the caller dedupes).

    Returns:
        ``yhat`` per timestamp (float64), or None when the model is not :func:`supported`.
    """
    consts = _constants(model)
    if consts is None:
        return None
    dates = pd.Series(ds)
    # setup_dataframe: t (and the changepoints in units of t, which predict sets on the model)
    t = np.array((dates - model.start) / model.t_scale)
    model.changepoints_t = consts.changepoints_t
    # predict_trend
    if consts.deltas is not None:
        trend = model.piecewise_linear(t, consts.deltas, consts.k, consts.m, consts.changepoints_t)
    else:
        trend = model.flat_trend(t, consts.m)
    trend = trend * model.y_scale + consts.floor
    # predict_seasonal_components: the feature matrix of make_all_seasonality_features
    x = _seasonal_matrix(model, dates)
    if x.shape[1] != len(model.train_component_cols):
        return None
    terms = {}
    for component, beta_t in consts.beta.items():
        comp = np.matmul(x, beta_t)
        if component in model.component_modes["additive"]:
            comp *= model.y_scale
        terms[component] = np.nanmean(comp, axis=1)
    return trend * (1 + terms["multiplicative_terms"]) + terms["additive_terms"]


def _seasonal_matrix(model: Prophet, dates: pd.Series) -> np.ndarray:
    """``make_all_seasonality_features(...)[0].values`` of a model without holidays or
    regressors: Prophet's ``fourier_series`` per seasonality (its Series arithmetic done on
    the arrays: the same ufuncs on the same contiguous values), in Fortran order as pandas'
    ``.values`` gives it, or the single ``zeros`` column."""
    widths = [2 * props["fourier_order"] for props in model.seasonalities.values()]
    x = np.zeros((len(dates), max(sum(widths), 1)), order="F")
    if not widths:
        return x
    epoch = pd.Timestamp("1970-01-01", tz=dates.dt.tz)
    t = ((dates - epoch).dt.total_seconds() / (24 * 60 * 60)).to_numpy(dtype=np.float64)
    x_t = np.pi * 2 * t
    col = 0
    for props, width in zip(model.seasonalities.values(), widths, strict=True):
        for i in range(width // 2):
            c = (i + 1) / props["period"] * x_t
            x[:, col + 2 * i] = np.sin(c)
            x[:, col + 2 * i + 1] = np.cos(c)
        col += width
    return x
