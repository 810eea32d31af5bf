"""Covariance estimation and the long-only sizing rules on one covariance matrix.

The covariance is Ledoit-Wolf shrunk (scikit-learn), so it stays positive definite with fewer
observations than symbols. Equal risk contribution and minimum variance are solved by skfolio
(``RiskBudgeting`` and ``MeanRisk``, convex programs solved by Clarabel) on that covariance,
which a small skfolio covariance estimator hands over as given. skfolio and scikit-learn are
imported on first use: they take seconds to import.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

_MIN_WEIGHT = 1e-8  # solver noise below this is set to zero


def shrunk_covariance(returns: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance of a complete ``(n_obs, n_assets)`` block of returns.

    Raises:
        ValueError: With fewer than 2 observations or a non-finite return.
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"covariance needs at least 2 observations, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("covariance needs finite returns")
    from sklearn.covariance import LedoitWolf

    return LedoitWolf().fit(x).covariance_


def _check_cov(cov: np.ndarray) -> np.ndarray:
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"covariance must be a non-empty square matrix, got shape {c.shape}")
    d = np.diag(c)
    if not (np.isfinite(c).all() and (d > 0).all()):
        raise ValueError("covariance must be finite with a positive diagonal")
    return c


def equal_weights(cov: np.ndarray) -> np.ndarray:
    """1/n for each of the n assets of ``cov``."""
    n = _check_cov(cov).shape[0]
    return np.full(n, 1.0 / n)


def inverse_volatility_weights(cov: np.ndarray) -> np.ndarray:
    """Weights proportional to 1/σ (σ = square root of the diagonal), summing to 1."""
    inv = 1.0 / np.sqrt(np.diag(_check_cov(cov)))
    return inv / inv.sum()


def risk_contributions(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each asset's share of portfolio variance, ``w_i (Σw)_i / w'Σw`` (sums to 1)."""
    w = np.asarray(weights, dtype=np.float64)
    c = np.asarray(cov, dtype=np.float64)
    rc = w * (c @ w)
    return rc / rc.sum()


def risk_parity_weights(cov: np.ndarray) -> np.ndarray:
    """Equal risk contribution (long-only, fully invested) weights, solved by skfolio.

    Raises:
        ValueError: On a malformed covariance.
        RuntimeError: If the solver fails.
    """
    c = _check_cov(cov)
    if len(c) == 1:
        return np.ones(1)
    from skfolio import RiskMeasure
    from skfolio.optimization import RiskBudgeting

    return _solve(RiskBudgeting, c, risk_measure=RiskMeasure.VARIANCE)


def min_variance_weights(cov: np.ndarray) -> np.ndarray:
    """Minimum-variance (long-only, fully invested) weights, solved by skfolio.

    Raises:
        ValueError: On a malformed covariance.
        RuntimeError: If the solver fails.
    """
    c = _check_cov(cov)
    if len(c) == 1:
        return np.ones(1)
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    return _solve(
        MeanRisk,
        c,
        objective_function=ObjectiveFunction.MINIMIZE_RISK,
        risk_measure=RiskMeasure.VARIANCE,
    )


def _solve(model: Any, cov: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Fit a skfolio optimisation on a given covariance (scaled to a unit mean variance)."""
    from skfolio.prior import EmpiricalPrior

    scaled = cov / float(np.mean(np.diag(cov)))
    opt = model(prior_estimator=EmpiricalPrior(covariance_estimator=_given(scaled)), **kwargs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # Only the covariance enters a variance objective; the returns are placeholders.
            opt.fit(np.zeros((2, len(cov))))
    except Exception as exc:  # skfolio raises its own OptimizationError and solver errors
        raise RuntimeError(f"{model.__name__} failed on a {len(cov)}-asset covariance") from exc
    w = np.asarray(opt.weights_, dtype=np.float64)
    w = np.where(w > _MIN_WEIGHT, w, 0.0)
    if not (np.isfinite(w).all() and w.sum() > 0):
        raise RuntimeError(f"{model.__name__} returned no usable weights")
    return w / w.sum()


def _given(cov: np.ndarray) -> Any:
    """A skfolio covariance estimator that returns ``cov``."""
    return _given_class()(cov)


@functools.cache
def _given_class() -> type:
    from skfolio.moments import BaseCovariance

    class GivenCovariance(BaseCovariance):
        """The covariance passed in, as a skfolio estimator."""

        def __init__(self, covariance: np.ndarray | None = None) -> None:
            super().__init__()
            self.covariance = covariance

        def fit(self, X: Any, y: Any = None, **fit_params: Any) -> GivenCovariance:
            self.covariance_ = np.array(self.covariance, dtype=np.float64)
            self.n_features_in_ = len(self.covariance_)
            return self

    return GivenCovariance
