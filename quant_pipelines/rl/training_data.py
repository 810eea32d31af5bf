"""The data a policy was trained on, signed with it: symbol, asset class, training range, holdout.

A stored policy's descriptive fields in MongoDB are not signed, so a replay must not decide on
them. :func:`attach_training_data` writes this record into ``policy.metrics`` before the policy
is signed and stored; :func:`signed_training_data` reads it back from a verified policy and
refuses a policy signed for another symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from quant_pipelines._utils.time import utc_timestamp
from quant_pipelines.rl.hashing import PolicyIntegrityError
from quant_pipelines.rl.policy import TrainedPolicy

#: Key of the record in a policy's (signed) ``metrics``.
TRAINING_DATA = "training_data"


@dataclass(frozen=True)
class TrainingData:
    """What a policy was trained on.

    Attributes:
        symbol: The instrument.
        asset_class: Its asset class.
        train_start: First training bar.
        train_end: Last training bar.
        holdout_start: Start of the held-out window (UTC): bars from here on were never seen.
    """

    symbol: str
    asset_class: str
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    holdout_start: pd.Timestamp


def training_windows(
    now: pd.Timestamp, *, lookback_days: int, holdout_days: int
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(training start, holdout start): ``holdout_days`` held out up to the end of ``now``'s day."""
    end = utc_timestamp(now).normalize() + pd.Timedelta(days=1)
    holdout = end - pd.Timedelta(days=holdout_days)
    return holdout - pd.Timedelta(days=lookback_days), holdout


def attach_training_data(policy: TrainedPolicy, data: TrainingData) -> None:
    """Records ``data`` in ``policy.metrics``, so that saving the policy signs it."""
    policy.metrics[TRAINING_DATA] = {
        "symbol": data.symbol,
        "asset_class": data.asset_class,
        "train_period": {"start": str(data.train_start), "end": str(data.train_end)},
        "holdout_start": utc_timestamp(data.holdout_start).isoformat(),
    }


def signed_training_data(policy: TrainedPolicy, *, symbol: str) -> TrainingData | None:
    """The training data signed with a loaded policy of ``symbol``.

    Returns:
        The record, or None for a policy stored before it was signed.

    Raises:
        PolicyIntegrityError: If the policy was signed for another symbol.
    """
    doc = (policy.metrics or {}).get(TRAINING_DATA)
    if doc is None:
        return None
    if doc.get("symbol") != symbol:
        raise PolicyIntegrityError(
            f"policy {policy.policy_id!r} is listed for {symbol} but was signed for "
            f"{doc.get('symbol')!r}; refusing it"
        )
    return TrainingData(
        symbol=symbol,
        asset_class=str(doc["asset_class"]),
        train_start=utc_timestamp(doc["train_period"]["start"]),
        train_end=utc_timestamp(doc["train_period"]["end"]),
        holdout_start=utc_timestamp(doc["holdout_start"]),
    )
