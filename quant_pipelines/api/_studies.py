"""Reads of the ``studies`` / ``trials`` mirrors for the status and leaderboard routes."""

from __future__ import annotations

import math
from typing import Any

from pymongo.database import Database

from quant_pipelines.optimizer.leaderboard import rank_leaderboard
from quant_pipelines.storage.studies import get_study, leaderboard_inputs, list_trials

__all__ = ["get_study", "leaderboard", "top_trials"]


def leaderboard(
    db: Database,
    *,
    objective: str | None = None,
    rank_by: str = "validation",
    strategy: str | None = None,
    asset_class: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Leaderboard rows (``optimizer.rank_leaderboard``) with the default promotion gate."""
    found, trials = leaderboard_inputs(
        db, objective=objective, strategy=strategy, asset_class=asset_class
    )
    return rank_leaderboard(found, trials, objective=objective, rank_by=rank_by, limit=limit)


def _value(doc: dict[str, Any]) -> float:
    value = doc.get("value")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return -math.inf


def top_trials(db: Database, study_name: str, limit: int) -> list[dict[str, Any]]:
    """A study's best completed, feasible trials, highest validation value first.

    Args:
        db: The project database.
        study_name: The study.
        limit: At most this many rows.

    Returns:
        Rows with ``rank, trial, params, objective`` (the value the sampler maximised: the
        validation value, or the in-sample one without validation), ``values, in_sample,
        validation, holdout, oos_sharpe, deflated_sharpe, max_drawdown, n_trades`` (drawdown
        and trades in sample, as on the leaderboard).
    """
    done = [
        t
        for t in list_trials(db, study_name, states=["COMPLETE"])
        if t.get("feasible", True) and t.get("value") is not None
    ]
    done.sort(key=lambda t: (-_value(t), t["number"]))
    rows = []
    for rank, doc in enumerate(done[:limit], start=1):
        is_m = doc.get("is_metrics") or {}
        oos_m = doc.get("oos_metrics") or {}
        rows.append(
            {
                "rank": rank,
                "trial": doc["number"],
                "params": doc.get("params", {}),
                "objective": doc["value"],
                "values": doc.get("values"),
                "in_sample": doc.get("in_sample"),
                "validation": doc.get("validation"),
                "holdout": doc.get("holdout"),
                "oos_sharpe": oos_m.get("sharpe"),
                "deflated_sharpe": doc.get("deflated_sharpe"),
                "max_drawdown": is_m.get("max_drawdown"),
                "n_trades": is_m.get("n_trades"),
            }
        )
    return rows
