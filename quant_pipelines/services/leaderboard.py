"""The leaderboard use case: rank trials within an objective, gate each study's pick, record
the promotions, and re-check them (the blocking asset check)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database

from quant_pipelines.optimizer import GateThresholds, gate, rank_leaderboard, select_trials
from quant_pipelines.storage import studies


@dataclass(frozen=True)
class LeaderboardReport:
    """What :func:`build_leaderboard` returns.

    Attributes:
        rows: Leaderboard rows (``optimizer.rank_leaderboard``), by objective then rank.
        promotions: Each study's selected trial and the gate's decision.
        n_studies: Studies considered.
        rank_by: The rank key.
        thresholds: The gate.
    """

    rows: list[dict[str, Any]]
    promotions: list[dict[str, Any]]
    n_studies: int
    rank_by: str
    thresholds: GateThresholds

    @property
    def promoted(self) -> list[dict[str, Any]]:
        """The promotions that passed the gate."""
        return [p for p in self.promotions if p["promoted"]]


def build_leaderboard(
    db: Database,
    *,
    objective: str | None = None,
    strategy: str | None = None,
    asset_class: str | None = None,
    rank_by: str = "validation",
    thresholds: GateThresholds = GateThresholds(),
    limit: int = 20,
    record: bool = True,
) -> LeaderboardReport:
    """Ranks the studies' trials and gates each study's pick.

    Args:
        db: The project database.
        objective: Only this objective's group (None: every objective, grouped).
        strategy: Only studies of this strategy.
        asset_class: Only studies on this asset class.
        rank_by: "validation", "deflated_sharpe", "in_sample" or "holdout".
        thresholds: The promotion gate.
        limit: Rows per objective.
        record: Store each study's decision in its document (what "the best strategy"
            readers use).

    Returns:
        The :class:`LeaderboardReport`.

    Raises:
        ValueError: For an unknown ``rank_by``.
    """
    found, trials = studies.leaderboard_inputs(
        db, objective=objective, strategy=strategy, asset_class=asset_class
    )
    rows = rank_leaderboard(
        found, trials, objective=objective, rank_by=rank_by, thresholds=thresholds, limit=limit
    )
    promotions = select_trials(found, trials, rank_by=rank_by, thresholds=thresholds)
    if record:
        studies.record_promotions(db, promotions)
    return LeaderboardReport(rows, promotions, len(found), rank_by, thresholds)


@dataclass(frozen=True)
class PromotionCheck:
    """What :func:`check_promotions` returns.

    Attributes:
        passed: Every promoted trial still passes every test.
        rows: One per promoted study: study, trial, observed values, thresholds, reasons.
        n_promoted: Promoted studies checked.
    """

    passed: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    n_promoted: int = 0


def check_promotions(db: Database) -> PromotionCheck:
    """Re-checks every stored promotion against its study's current statistics and trial.

    A study resumed after the leaderboard was built has new statistics (more trials tried
    deflate its Sharpe ratio): its promotion must pass again.
    """
    rows = []
    for promoted in studies.promoted_trials(db):
        found, trials = studies.leaderboard_inputs(db, strategy=promoted["strategy"])
        study = next((s for s in found if s["study_name"] == promoted["study"]), None)
        trial = next(
            (
                t
                for t in trials
                if t["study_name"] == promoted["study"] and t["number"] == promoted["trial"]
            ),
            None,
        )
        limits = _thresholds(promoted["promotion"].get("thresholds"))
        if study is None or trial is None:
            ok, reasons, observed = False, ["the promoted trial is gone"], {}
        else:
            ok, reasons, observed = gate(trial, study.get("statistics"), limits)
        rows.append(
            {
                "study": promoted["study"],
                "trial": promoted["trial"],
                "passes": ok,
                "reasons": reasons,
                "observed": observed,
                "thresholds": limits.to_dict(),
            }
        )
    return PromotionCheck(all(r["passes"] for r in rows), rows, len(rows))


def _thresholds(data: Mapping[str, Any] | None) -> GateThresholds:
    known = GateThresholds.__dataclass_fields__
    return GateThresholds(**{k: v for k, v in (data or {}).items() if k in known})


def promoted_strategies(
    db: Database, *, asset_class: str | None = None, symbol: str | None = None
) -> list[dict[str, Any]]:
    """The promoted trials (best holdout Sharpe first), optionally of studies that covered
    ``symbol``; empty when none is promoted."""
    rows = studies.promoted_trials(db, asset_class=asset_class)
    if symbol is not None:
        rows = [r for r in rows if symbol in r["symbols"]]
    return rows
