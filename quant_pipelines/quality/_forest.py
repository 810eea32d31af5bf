"""Isolation Forest scores of many forests in one vectorised pass. Private to the quality package.

scikit-learn's ``IsolationForest.score_samples`` walks its trees one by one in Python (about
0.1 ms per tree whatever the number of rows), so a daily batch of one bar per symbol, each
symbol with its own forest, costs ~10 ms per symbol in that loop alone. Here every tree of
every forest of the batch is flattened into one node table (cached per fitted forest) and all
(row, tree) pairs descend it together, level by level, with NumPy.

The arithmetic is scikit-learn 1.9's, step for step, so the scores are bit-identical (the
tests compare them with ``score_samples``): features cast to float32 as ``score_samples``
validates them; a row goes left where ``x <= threshold`` (NaN by the node's
``missing_go_to_left``); each tree adds ``decision_path_length + average_path_length - 1`` of
its leaf to the row's depth, tree after tree in order (a left-to-right cumulative sum); the
score is ``2 ** -(depth / (n_trees * c(max_samples)))``. A forest without the fitted
attributes this needs (another scikit-learn) is scored by ``score_samples`` instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

_ATTRIBUTES = (
    "estimators_",
    "estimators_features_",
    "_max_features",
    "_max_samples",
    "_decision_path_lengths",
    "_average_path_length_per_tree",
)


@dataclass(frozen=True)
class _Flat:
    """One forest's trees as one node table (node ids local to the forest)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    denominator: np.ndarray
    n_features: int


_CACHE: weakref.WeakKeyDictionary[IsolationForest, _Flat | None] = weakref.WeakKeyDictionary()


def _flatten(forest: IsolationForest) -> _Flat | None:
    """The forest's node table, or None when it lacks the fitted attributes read here."""
    if forest in _CACHE:
        return _CACHE[forest]
    flat = None
    if all(hasattr(forest, name) for name in _ATTRIBUTES):
        parts: dict[str, list[np.ndarray]] = {k: [] for k in _Flat.__dataclass_fields__}
        offset = 0
        subsample = forest._max_features != forest.n_features_in_
        trees = zip(
            forest.estimators_,
            forest.estimators_features_,
            forest._decision_path_lengths,
            forest._average_path_length_per_tree,
            strict=True,
        )
        for est, features, depth, avg in trees:
            tree = est.tree_
            left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
            leaf = left == -1
            feature = tree.feature.astype(np.int64)
            if subsample:
                feature = np.where(leaf, 0, np.asarray(features)[np.maximum(feature, 0)])
            parts["left"].append(np.where(leaf, -1, left + offset))
            parts["right"].append(np.where(leaf, -1, right + offset))
            parts["feature"].append(np.where(leaf, 0, feature))
            parts["threshold"].append(tree.threshold.astype(np.float64))
            parts["missing_left"].append(np.asarray(tree.missing_go_to_left, dtype=bool))
            parts["leaf"].append(leaf)
            parts["value"].append(depth + avg - 1.0)  # per node, as score_samples adds it
            parts["roots"].append(np.array([offset]))
            offset += tree.node_count
        arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
        denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])
        flat = _Flat(**arrays, denominator=denominator, n_features=int(forest.n_features_in_))
    _CACHE[forest] = flat
    return flat


def forest_scores(groups: Sequence[tuple[IsolationForest, np.ndarray]]) -> list[np.ndarray]:
    """Each group's anomaly scores ``-forest.score_samples(matrix)``, bit for bit.

    Args:
        groups: ``(fitted forest, feature matrix)`` pairs. Stack the rows of every symbol
            that shares a forest (a pooled model) into one group: the cost is per forest and
            tree level, hardly per row.

    Returns:
        One float64 array per group, in ``(0, 1]`` (higher: more anomalous).
    """
    out = []
    for forest, matrix in groups:
        flat = _flatten(forest)
        if len(matrix) == 0:
            out.append(np.zeros(0))
        elif flat is None or matrix.shape[1] != flat.n_features:
            out.append(-forest.score_samples(matrix))
        else:
            out.append(_descend(flat, matrix))
    return out


def _descend(flat: _Flat, matrix: np.ndarray) -> np.ndarray:
    """Scores of one forest: every (row, tree) pair descends together, level by level."""
    with np.errstate(over="ignore"):  # beyond float32: inf, as score_samples casts it
        x = np.asarray(matrix, dtype=np.float32).astype(np.float64)
    n_rows, n_cols = x.shape
    n_trees = len(flat.roots)
    node = np.tile(flat.roots, n_rows)  # row-major: each row's trees contiguous, in order
    row_base = np.repeat(np.arange(n_rows) * n_cols, n_trees)
    values = x.ravel()
    nan = bool(np.isnan(values).any())
    active = np.flatnonzero(~flat.leaf[node])
    while len(active):
        at = node[active]
        value = values[row_base[active] + flat.feature[at]]
        go_left = value <= flat.threshold[at]
        if nan:
            go_left = np.where(np.isnan(value), flat.missing_left[at], go_left)
        at = np.where(go_left, flat.left[at], flat.right[at])
        node[active] = at
        active = active[~flat.leaf[at]]
    depths = np.cumsum(flat.value[node].reshape(n_rows, n_trees), axis=1)[:, -1]
    denominator = flat.denominator
    return 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))
