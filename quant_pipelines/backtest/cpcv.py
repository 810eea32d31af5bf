"""Combinatorial purged cross-validation (López de Prado, *Advances in Financial ML*, ch. 12).

``[0, n_bars)`` is cut into ``N`` contiguous groups. Every combination of ``k`` groups is the
test set of one split (``C(N, k)`` splits, in lexicographic order of the combinations); the
other groups are its training set, minus

* ``purge`` bars right before each test range (training labels that would overlap the test
  period), and
* ``embargo`` bars right after each test range (serial correlation leaking back into training).

Each group is a test group in ``C(N-1, k-1) = k·C(N, k)/N`` splits, which gives that many
backtest *paths*: path ``j`` takes, for every group ``g``, the ``j``-th split (in split order)
in which ``g`` is tested. A path therefore covers ``[0, n_bars)`` exactly once, each piece
predicted by a model that did not train on it.

All ranges are half-open bar positions ``(lo, hi)`` meaning ``lo <= bar < hi``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

__all__ = ["CPCVPlan", "CPCVSplit", "make_cpcv_splits"]

Range = tuple[int, int]


@dataclass(frozen=True)
class CPCVSplit:
    """One train/test split.

    Attributes:
        test_groups: Indices of the test groups, increasing.
        train: Training bar ranges ``(lo, hi)``, in time order, after purge and embargo.
        test: Test bar ranges ``(lo, hi)``, in time order; adjacent test groups are merged.
    """

    test_groups: tuple[int, ...]
    train: tuple[Range, ...]
    test: tuple[Range, ...]


@dataclass(frozen=True)
class CPCVPlan:
    """All splits and backtest paths of one CPCV configuration.

    Attributes:
        groups: The ``N`` group ranges ``(lo, hi)``, in time order, covering ``[0, n_bars)``.
        splits: The ``C(N, k)`` splits, in lexicographic order of their test groups.
        paths: The ``k·C(N, k)/N`` paths. A path is a tuple of ``N`` segments
            ``(lo, hi, split_index)``, one per group and in time order: the bars of group ``g``
            = ``[lo, hi)`` are predicted by the model trained on ``splits[split_index]`` (a
            split in which ``g`` is a test group).
    """

    groups: tuple[Range, ...]
    splits: tuple[CPCVSplit, ...]
    paths: tuple[tuple[tuple[int, int, int], ...], ...]

    @property
    def n_splits(self) -> int:
        """Number of splits, ``C(N, k)``."""
        return len(self.splits)

    @property
    def n_paths(self) -> int:
        """Number of backtest paths, ``k·C(N, k)/N``."""
        return len(self.paths)


def _merge(ranges: list[Range]) -> list[Range]:
    """Merge touching half-open ranges (given in time order)."""
    merged: list[Range] = []
    for lo, hi in ranges:
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _split(
    groups: tuple[Range, ...], test_groups: tuple[int, ...], n_bars: int, purge: int, embargo: int
) -> CPCVSplit:
    chosen = set(test_groups)
    test = _merge([groups[g] for g in test_groups])
    rest = _merge([groups[g] for g in range(len(groups)) if g not in chosen])
    train: list[Range] = []
    for lo, hi in rest:
        # Every training segment is bounded by a test range (or the ends of the data): only the
        # test range ending at ``lo`` (embargo) and the one starting at ``hi`` (purge) reach it.
        start = lo + embargo if lo > 0 else lo
        end = hi - purge if hi < n_bars else hi
        if end > start:
            train.append((start, end))
    if not train:
        raise ValueError(
            f"purge={purge} and embargo={embargo} leave no training bars for test groups "
            f"{test_groups}; use smaller purge/embargo or more bars per group"
        )
    return CPCVSplit(test_groups=test_groups, train=tuple(train), test=tuple(test))


def make_cpcv_splits(
    n_bars: int,
    *,
    n_groups: int = 6,
    n_test_groups: int = 2,
    purge: int = 0,
    embargo: int = 0,
) -> CPCVPlan:
    """Plan combinatorial purged cross-validation on ``n_bars`` bars.

    Group ``i`` is ``[i * n_bars // n_groups, (i + 1) * n_bars // n_groups)``.

    Args:
        n_bars: Number of bars.
        n_groups: Number of contiguous groups ``N`` (>= 2).
        n_test_groups: Test groups per split ``k``, in ``[1, N - 1]``.
        purge: Training bars dropped right before each test range (>= 0).
        embargo: Training bars dropped right after each test range (>= 0).

    Returns:
        The groups, the ``C(N, k)`` splits and the ``k·C(N, k)/N`` paths.

    Raises:
        ValueError: For ``n_groups < 2``, ``n_test_groups`` outside ``[1, n_groups - 1]``,
            negative ``purge`` or ``embargo``, groups shorter than 2 bars, or a split left
            without training bars by ``purge`` and ``embargo``.
    """
    if n_groups < 2:
        raise ValueError(f"n_groups must be >= 2, got {n_groups}")
    if not 1 <= n_test_groups <= n_groups - 1:
        raise ValueError(
            f"n_test_groups must be in [1, n_groups - 1] = [1, {n_groups - 1}], got {n_test_groups}"
        )
    if purge < 0 or embargo < 0:
        raise ValueError(f"purge and embargo must be >= 0, got purge={purge}, embargo={embargo}")
    if n_bars // n_groups < 2:
        raise ValueError(
            f"groups need >= 2 bars each: n_bars={n_bars} is too few for n_groups={n_groups} "
            f"(need n_bars >= {2 * n_groups})"
        )
    edges = [i * n_bars // n_groups for i in range(n_groups + 1)]
    groups = tuple(itertools.pairwise(edges))
    combos = list(itertools.combinations(range(n_groups), n_test_groups))
    splits = tuple(_split(groups, c, n_bars, purge, embargo) for c in combos)

    n_paths = math.comb(n_groups - 1, n_test_groups - 1)
    tested_in: list[list[int]] = [[] for _ in range(n_groups)]
    for index, combo in enumerate(combos):
        for g in combo:
            tested_in[g].append(index)
    paths = tuple(
        tuple((lo, hi, tested_in[g][j]) for g, (lo, hi) in enumerate(groups))
        for j in range(n_paths)
    )
    return CPCVPlan(groups=groups, splits=splits, paths=paths)
