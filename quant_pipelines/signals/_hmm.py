"""Forward-filtered hidden Markov chains behind :func:`quant_pipelines.signals.regime_scores`.

Each chain runs as a *forward (Hamilton) filter*: ``P(state_t | r_1..r_t)``, no smoothing and no
backward pass, so its output at bar t uses returns up to t only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def t_loglik(x: np.ndarray, scale: np.ndarray, dof: float) -> np.ndarray:
    """Log density (up to a constant) of a unit-variance Student-t scaled to std ``scale``.

    Args:
        x: Observations.
        scale: Standard deviation per observation.
        dof: Degrees of freedom (> 2).

    Returns:
        Log densities, same shape as ``x``.
    """
    sc = scale * math.sqrt((dof - 2.0) / dof)
    z = x / sc
    return -np.log(sc) - (dof + 1.0) / 2.0 * np.log1p(z * z / dof)


def transition(days: Sequence[float]) -> np.ndarray:
    """Transition matrix: stay with prob ``1 - 1/days``, else move uniformly to another state.

    Args:
        days: Expected duration of each state (bars, >= 1).

    Returns:
        ``(k, k)`` row-stochastic matrix.

    Raises:
        ValueError: If a duration is below one bar.
    """
    k = len(days)
    a = np.empty((k, k))
    for i, d in enumerate(days):
        if d < 1:
            raise ValueError(f"expected durations must be >= 1 bar, got {d!r}")
        a[i] = (1.0 / d) / (k - 1)
        a[i, i] = 1.0 - 1.0 / d
    return a


def forward(loglik: np.ndarray, trans: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Filtered state probabilities ``P(state_t | r_1..r_t)`` (a plain loop: n x k floats).

    Args:
        loglik: ``(n, k)`` emission log-likelihoods.
        trans: ``(k, k)`` transition matrix.
        prior: State probabilities before the first bar.

    Returns:
        ``(n, k)`` filtered probabilities (rows sum to one).
    """
    n, k = loglik.shape
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True)).tolist()
    a = trans.tolist()
    p = prior.tolist()
    out = np.empty((n, k))
    rows = range(k)
    for t in range(n):
        li = lik[t]
        q = [sum(p[i] * a[i][j] for i in rows) * li[j] for j in rows]
        total = sum(q)
        p = [v / total for v in q] if total > 0 else [1.0 / k] * k
        out[t] = p
    return out
