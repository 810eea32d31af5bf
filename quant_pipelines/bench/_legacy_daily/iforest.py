"""Isolation Forest on the scale-free bar features, per symbol or pooled per asset class.

The normalised score is the anomaly score of Liu, Ting and Zhou (2008),
``s = 2 ** (-E[h(x)] / c(n))`` — scikit-learn's ``-score_samples`` — which lies in ``(0, 1]``:
about 0.5 or below for ordinary bars, approaching 1 for bars isolated after very few splits.
It does not depend on the training-set size, so one threshold serves every model of a version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from quant_pipelines.bench._legacy_daily.features import IFOREST_FEATURES, model_matrix

N_ESTIMATORS = 100
"""Trees per forest."""

MAX_SAMPLES = 256
"""Sub-sample size per tree (the paper's default)."""

MIN_TRAIN = 30
"""Fewest featured bars a forest is trained on."""


@dataclass(frozen=True)
class IForestModel:
    """A fitted Isolation Forest and what it was trained on.

    Attributes:
        estimator: The fitted scikit-learn forest.
        features: Feature columns, in training order.
        n_train: Number of training bars.
        seed: Random seed of the fit.
    """

    estimator: IsolationForest
    features: tuple[str, ...]
    n_train: int
    seed: int

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """Normalised anomaly scores in ``[0, 1]``; warm-up bars score 0.

        Args:
            features: Output of :func:`~quant_pipelines.quality.build_features`.

        Returns:
            One score per row.
        """
        if len(features) == 0:
            return np.zeros(0)
        raw = -self.estimator.score_samples(model_matrix(features))
        scores = np.clip(raw, 0.0, 1.0)
        warm = features["warmup"].to_numpy(dtype=bool) if "warmup" in features else False
        return np.where(warm, 0.0, scores)


def training_rows(features: pd.DataFrame, *, exclude: np.ndarray | None = None) -> pd.DataFrame:
    """The rows a model may learn from: featured (not warm-up) and not excluded."""
    keep = ~features["warmup"].to_numpy(dtype=bool)
    if exclude is not None:
        keep &= ~exclude
    return features[keep]


def fit_iforest(
    features: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    seed: int = 0,
    n_estimators: int = N_ESTIMATORS,
    max_samples: int = MAX_SAMPLES,
) -> IForestModel:
    """Fit an Isolation Forest on trailing features.

    Pass one symbol's features for a per-symbol model, or several symbols' features (of one
    asset class) for a pooled model: the features are scale-free, so pooling is meaningful.

    Args:
        features: Training features (warm-up rows are dropped); a sequence is concatenated.
        seed: Random seed of the forest.
        n_estimators: Number of trees.
        max_samples: Sub-sample size per tree (capped at the number of rows).

    Returns:
        The fitted model.

    Raises:
        ValueError: If fewer than :data:`MIN_TRAIN` usable rows remain.
    """
    frames = [features] if isinstance(features, pd.DataFrame) else list(features)
    train = pd.concat([training_rows(f) for f in frames]) if frames else pd.DataFrame()
    if len(train) < MIN_TRAIN:
        raise ValueError(
            f"need at least {MIN_TRAIN} featured bars to fit the Isolation Forest, got "
            f"{len(train)}; pass a longer history (features need a trailing window first)"
        )
    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=min(max_samples, len(train)),
        random_state=seed,
        n_jobs=1,
    )
    forest.fit(model_matrix(train))
    return IForestModel(forest, IFOREST_FEATURES, len(train), seed)
