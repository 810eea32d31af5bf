"""Statistics of an honest optimizer: PBO by CSCV, effective trials, Sharpe variance, SPA.

* :func:`probability_of_backtest_overfitting`: combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado & Zhu, 2014). The ``T x N`` matrix of the ``N`` trials'
  in-sample returns is cut into ``S`` blocks; for every half of the blocks taken as in-sample
  (IS) and the other half as out-of-sample (OOS) the IS-best trial is ranked OOS. PBO is the
  share of splits where it ranks in the bottom half.
* :func:`cluster_labels` / :func:`effective_number_of_trials`: trials whose return series are
  correlated above a threshold are one cluster. The count is reported *beside* ``N``; the
  deflated Sharpe ratio keeps using ``N`` (and :func:`sharpe_variance`, which the clusters
  can only raise).
* :func:`spa_test`: Hansen's test of superior predictive ability against a benchmark, with
  arch's numbers (:mod:`quant_pipelines.optimizer._spa`).

Sharpe ratios here are per period (mean / std with ``ddof=1``) unless stated otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from quant_pipelines.optimizer._spa import SPAResult, spa_test

__all__ = [
    "PBOResult",
    "SPAResult",
    "cluster_labels",
    "effective_number_of_trials",
    "probability_of_backtest_overfitting",
    "sharpe_variance",
    "spa_test",
]

# A subset's variance below this share of its mean square is rounding noise of the
# sum-of-squares formula: the column is constant there and its Sharpe ratio is 0.
_ZERO_VARIANCE_RTOL = 1e-12
_CHUNK_ROWS = 512
_MAX_BLOCKS = 20  # C(20, 10) = 184,756 splits; C(22, 11) would be 705,432


@dataclass(frozen=True)
class PBOResult:
    """The outcome of CSCV.

    Attributes:
        pbo: Probability of backtest overfitting: share of splits whose logit is <= 0.
        degradation_slope: OLS slope of the IS-best trial's OOS Sharpe on its IS Sharpe.
        degradation_intercept: The intercept of that fit (annualised Sharpe units).
        probability_of_loss: Share of splits whose IS-best trial has an OOS Sharpe < 0.
        n_splits: Number of splits, ``C(S, S/2)``.
        n_blocks: ``S``.
        n_configurations: ``N``.
        logits: ``ln(w / (1 - w))`` per split, ``w`` the relative OOS rank of the IS-best trial.
    """

    pbo: float
    degradation_slope: float
    degradation_intercept: float
    probability_of_loss: float
    n_splits: int
    n_blocks: int
    n_configurations: int
    logits: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields as JSON-able Python numbers (no logits)."""
        out = asdict(self)
        del out["logits"]
        return {k: (int(v) if k.startswith("n_") else float(v)) for k, v in out.items()}


@lru_cache(maxsize=8)
def _half_combinations(n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 matrix of every ``n_blocks/2``-subset of blocks (lexicographic) and complements."""
    half = n_blocks // 2
    combos = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n_blocks), half)),
        dtype=np.int64,
        count=math.comb(n_blocks, half) * half,
    ).reshape(-1, half)
    member = np.zeros((len(combos), n_blocks))
    np.put_along_axis(member, combos, 1.0, axis=1)
    bits = member @ (2.0 ** np.arange(n_blocks))
    complement_bits = 2.0**n_blocks - 1.0 - bits
    order = np.argsort(bits)
    complement = order[np.searchsorted(bits, complement_bits, sorter=order)]
    member.setflags(write=False)
    complement.setflags(write=False)
    return member, complement


def _as_matrix(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=float)
    if r.ndim != 2:
        raise ValueError(f"returns must be a T x N matrix, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("returns must be finite (found NaN or inf)")
    return r


def _subset_sharpe(
    member: np.ndarray, sizes: np.ndarray, sums: np.ndarray, squares: np.ndarray
) -> np.ndarray:
    """Sharpe ratio of every column on every subset of blocks (rows of ``member``).

    Sums over a subset are ``member @ per-block sums``; done in chunks of rows so that the
    temporaries stay in cache (the full matrices are 12,870 x N for 16 blocks).
    """
    out = np.empty((member.shape[0], sums.shape[1]))
    for lo in range(0, member.shape[0], _CHUNK_ROWS):
        m = member[lo : lo + _CHUNK_ROWS]
        count = (m @ sizes)[:, None]
        total = m @ sums
        ss = m @ squares
        small = ss * _ZERO_VARIANCE_RTOL
        total /= count  # mean
        ss -= count * total * total  # sum of squared deviations
        constant = ss <= small  # includes rounding below zero
        ss[constant] = 1.0
        ss /= count - 1.0
        np.sqrt(ss, out=ss)
        np.divide(total, ss, out=out[lo : lo + _CHUNK_ROWS])
        out[lo : lo + _CHUNK_ROWS][constant] = 0.0
    return out


def probability_of_backtest_overfitting(
    returns: np.ndarray, *, n_blocks: int = 16, periods_per_year: float = 252.0
) -> PBOResult:
    """PBO of selecting the best of ``N`` trials by in-sample Sharpe ratio (CSCV).

    The ``T`` rows are cut into ``S = n_blocks`` contiguous blocks (the first ``T mod S`` one
    row longer). For each of the ``C(S, S/2)`` halves of the blocks (IS; the complement is OOS,
    so every split's mirror is a split too) the IS-best trial ``n*`` (first one on ties) is
    ranked among the ``N`` OOS Sharpe ratios (average rank on ties, ``1..N``):
    ``w = rank / (N + 1)``, logit ``ln(w / (1 - w))``. A zero-variance column has Sharpe 0.

    Args:
        returns: ``T x N`` matrix, one column of per-bar returns per trial.
        n_blocks: ``S``: even, in ``[2, 20]``, with at least 2 rows per block.
        periods_per_year: Annualises the Sharpe ratios of the degradation fit (the slope,
            ranks and PBO do not depend on it).

    Returns:
        The PBO, the degradation fit, the probability of OOS loss and the logits.

    Raises:
        ValueError: For fewer than 2 columns, an odd, too small or too large ``n_blocks``,
            fewer than ``2 * n_blocks`` rows, non-finite returns or a non-positive
            ``periods_per_year``.
    """
    r = _as_matrix(returns)
    t, n = r.shape
    if n < 2:
        raise ValueError(f"PBO needs at least 2 configurations (columns), got {n}")
    if n_blocks < 2 or n_blocks % 2 or n_blocks > _MAX_BLOCKS:
        raise ValueError(f"n_blocks must be even, >= 2 and <= {_MAX_BLOCKS}, got {n_blocks}")
    if t < 2 * n_blocks:
        raise ValueError(
            f"PBO needs at least 2 rows per block: {t} rows < 2 * n_blocks = {2 * n_blocks}"
        )
    if not (np.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")

    sizes = np.full(n_blocks, t // n_blocks)
    sizes[: t % n_blocks] += 1
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    member, complement = _half_combinations(n_blocks)
    sharpe = _subset_sharpe(
        member,
        sizes.astype(float),
        np.add.reduceat(r, starts, axis=0),
        np.add.reduceat(r * r, starts, axis=0),
    )  # row i: each column's Sharpe ratio on the blocks of split i

    rows = np.arange(len(member))
    best = np.argmax(sharpe, axis=1)
    is_best = sharpe[rows, best]
    oos_best = sharpe[complement, best]
    # Rank of oos_best[i] within row complement[i] of ``sharpe``, without copying rows.
    target = np.empty_like(oos_best)
    target[complement] = oos_best
    below = (sharpe < target[:, None]).sum(axis=1)[complement]
    equal = (sharpe == target[:, None]).sum(axis=1)[complement]
    rank = below + (equal + 1) / 2.0
    omega = rank / (n + 1)
    logits = np.log(omega / (1.0 - omega))

    x = is_best * np.sqrt(periods_per_year)
    y = oos_best * np.sqrt(periods_per_year)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    # All splits' best IS Sharpe equal (constant columns): no slope to fit.
    slope = float(dx @ (y - y.mean())) / sxx if sxx > 0 else 0.0
    intercept = float(y.mean() - slope * x.mean())
    logits.setflags(write=False)
    return PBOResult(
        pbo=float(np.mean(2.0 * rank <= n + 1)),
        degradation_slope=slope,
        degradation_intercept=intercept,
        probability_of_loss=float(np.mean(oos_best < 0)),
        n_splits=len(member),
        n_blocks=n_blocks,
        n_configurations=n,
        logits=logits,
    )


def cluster_labels(returns: np.ndarray, *, max_correlation: float = 0.9) -> np.ndarray:
    """Cluster the trials' return series by correlation.

    Average-linkage hierarchical clustering on the distance ``1 - rho`` between columns, cut at
    ``1 - max_correlation``: two clusters merge while their *average* pairwise correlation is
    at least ``max_correlation``. Constant columns (no correlation defined) form one cluster.

    Args:
        returns: ``T x N`` matrix, one column per trial (``T >= 2`` when ``N >= 2``).
        max_correlation: Correlation threshold in ``[-1, 1]``.

    Returns:
        ``N`` integer labels ``0..K-1``, numbered in order of first appearance.

    Raises:
        ValueError: For a non-matrix, non-finite values, too few rows or a bad threshold.
    """
    r = _as_matrix(returns)
    t, n = r.shape
    if not -1.0 <= max_correlation <= 1.0:
        raise ValueError(f"max_correlation must be in [-1, 1], got {max_correlation}")
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    if t < 2:
        raise ValueError(f"clustering needs at least 2 rows, got {t}")
    centred = r - r.mean(axis=0)
    scale = np.sqrt(np.sum(centred * centred, axis=0))
    constant = scale <= _ZERO_VARIANCE_RTOL * np.sqrt(np.sum(r * r, axis=0))
    raw = np.zeros(n, dtype=np.int64)
    varying = np.flatnonzero(~constant)
    if len(varying) >= 2:
        z = centred[:, varying] / scale[varying]
        distance = np.clip(1.0 - z.T @ z, 0.0, 2.0)
        np.fill_diagonal(distance, 0.0)
        tree = linkage(squareform(distance, checks=False), method="average")
        raw[varying] = fcluster(tree, t=1.0 - max_correlation, criterion="distance")
    elif len(varying) == 1:
        raw[varying] = 1
    # raw label 0 = the constant columns; renumber by first appearance.
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)


def effective_number_of_trials(returns: np.ndarray, *, max_correlation: float = 0.9) -> int:
    """Number of clusters of correlated trials (:func:`cluster_labels`); 1 for one column.

    Information to show beside the number of trials ``N``: many near-identical trials are
    fewer independent bets. The deflated Sharpe ratio still uses ``N``.

    Args:
        returns: ``T x N`` matrix, one column per trial.
        max_correlation: Columns correlated above this are merged.

    Returns:
        The number of clusters (0 for no columns).

    Raises:
        ValueError: As :func:`cluster_labels`.
    """
    return len(np.unique(cluster_labels(returns, max_correlation=max_correlation)))


def sharpe_variance(
    sharpes: Sequence[float], *, cluster_labels: Sequence[int] | None = None
) -> tuple[float, str]:
    """Variance of the trials' per-period Sharpe ratios for the deflated Sharpe ratio.

    Conservative, so that a population concentrated by a sampler (TPE) cannot shrink it: the
    larger of the sample variance (``ddof=1``) of all Sharpe ratios and, when ``cluster_labels``
    give at least 2 clusters, the sample variance of the per-cluster mean Sharpe ratios.

    Args:
        sharpes: Per-period Sharpe ratios, one per trial.
        cluster_labels: Optional cluster of each trial (same length as ``sharpes``).

    Returns:
        ``(variance, source)``, source ``"trials"`` or ``"clusters"`` (the larger one; ties go
        to ``"trials"``); ``(0.0, "trials")`` for fewer than 2 Sharpe ratios.

    Raises:
        ValueError: For non-finite Sharpe ratios or labels of a different length.
    """
    values = np.asarray(sharpes, dtype=float).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError("sharpes must be finite (found NaN or inf)")
    if cluster_labels is not None and len(cluster_labels) != len(values):
        raise ValueError(
            f"cluster_labels has {len(cluster_labels)} entries for {len(values)} Sharpe ratios"
        )
    if len(values) < 2:
        return 0.0, "trials"
    trials = float(np.var(values, ddof=1))
    if cluster_labels is None:
        return trials, "trials"
    _, inverse = np.unique(np.asarray(cluster_labels), return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    if n_clusters < 2:
        return trials, "trials"
    means = np.bincount(inverse, weights=values) / np.bincount(inverse)
    clusters = float(np.var(means, ddof=1))
    return (clusters, "clusters") if clusters > trials else (trials, "trials")
