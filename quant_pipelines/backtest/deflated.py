"""The deflated Sharpe ratio (Bailey & López de Prado, 2014).

Given the Sharpe ratio ``SR`` of the best of ``N`` trials, measured on ``T`` returns with
skewness ``g3`` and (non-excess) kurtosis ``g4``, and the variance ``V`` of the Sharpe ratios
across the trials (all per period, not annualised):

* expected maximum Sharpe ratio under the null (no skill)::

    SR0 = sqrt(V) * ((1 - gamma) * Z^-1(1 - 1/N) + gamma * Z^-1(1 - 1/(N e)))

  with ``gamma`` = 0.5772... (Euler-Mascheroni) and ``Z^-1`` the standard normal quantile;
* deflated Sharpe ratio, the probability that the true Sharpe ratio exceeds ``SR0``::

    DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2))

A per-period Sharpe ratio is ``annual_sharpe / sqrt(periods_per_year)``.
"""

from __future__ import annotations

import math

EULER_GAMMA = 0.5772156649015329


def norm_cdf(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    """Standard normal quantile (Acklam's approximation refined by two Newton steps).

    Raises:
        ValueError: Unless ``0 < p < 1``.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
         -30.66479806614716, 2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
         -13.28068155288572)  # fmt: skip
    c = (-7.784894002430293e-03, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
        )
    elif p > 1.0 - lo:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
        )
    else:
        q = p - 0.5
        r = q * q
        x = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
        )
    for _ in range(2):
        x -= (norm_cdf(x) - p) * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    return x


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """``SR0``: the expected maximum per-period Sharpe ratio of ``n_trials`` skill-less trials.

    Args:
        n_trials: Number of independent trials (>= 1); 0 is returned for one trial.
        sharpe_variance: Variance of the per-period Sharpe ratios across trials (>= 0).

    Returns:
        The benchmark Sharpe ratio ``SR0``.
    """
    if n_trials < 1 or sharpe_variance < 0:
        raise ValueError("n_trials must be >= 1 and sharpe_variance >= 0")
    if n_trials == 1 or sharpe_variance == 0:
        return 0.0
    g = EULER_GAMMA
    z = (1 - g) * norm_ppf(1 - 1 / n_trials) + g * norm_ppf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * z


def deflated_sharpe_ratio(
    sharpe: float,
    n_trials: int,
    n_obs: int,
    skew: float,
    kurtosis: float,
    sharpe_variance: float,
) -> float:
    """Probability that the best trial's true Sharpe ratio beats the selection-bias benchmark.

    Args:
        sharpe: The selected trial's per-period (non-annualised) Sharpe ratio.
        n_trials: Number of trials tried (>= 1).
        n_obs: Number of returns the Sharpe ratio was measured on (>= 2).
        skew: Skewness of those returns.
        kurtosis: Kurtosis (non-excess: 3 for normal returns).
        sharpe_variance: Variance of the per-period Sharpe ratios across the trials.

    Returns:
        DSR in [0, 1]; above 0.95 is the usual bar for "significant after N trials".

    Raises:
        ValueError: For n_obs < 2, n_trials < 1 or a negative variance.
    """
    if n_obs < 2:
        raise ValueError(f"n_obs must be >= 2, got {n_obs}")
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if denom <= 0:
        raise ValueError("non-positive variance term; check skew/kurtosis (kurtosis is non-excess)")
    return norm_cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denom))
