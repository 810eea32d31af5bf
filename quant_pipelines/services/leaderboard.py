"""The leaderboard use case: rank trials within an objective, gate each study's pick, record
the promotions, and re-check them (the blocking asset check)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pymongo.database import Database

from quant_pipelines.optimizer import GateThresholds, gate, rank_leaderboard, select_trials
from quant_pipelines.optimizer.portfolio_report import PortfolioBacktest, portfolio_backtest
from quant_pipelines.storage import studies
from quant_pipelines.storage.bars import BarsRepository

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderboardReport:
    """What :func:`build_leaderboard` returns.

    Attributes:
        rows: Leaderboard rows (``optimizer.rank_leaderboard``), by objective then rank.
        promotions: Each study's selected trial and the gate's decision.
        n_studies: Studies considered.
        rank_by: The rank key.
        thresholds: The gate.
        portfolio_backtests: Study name -> the ``portfolio_backtest`` of its selected trial,
            for every portfolio study (also stored in the study document).
    """

    rows: list[dict[str, Any]]
    promotions: list[dict[str, Any]]
    n_studies: int
    rank_by: str
    thresholds: GateThresholds
    portfolio_backtests: dict[str, PortfolioBacktest] = field(default_factory=dict)

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
            readers use), and each portfolio study's ``portfolio_backtest``.

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
    backtests = attach_portfolio_backtests(db, found, trials, promotions, record=record)
    return LeaderboardReport(rows, promotions, len(found), rank_by, thresholds, backtests)


def attach_portfolio_backtests(
    db: Database,
    found: list[dict[str, Any]],
    trials: list[dict[str, Any]],
    promotions: list[dict[str, Any]],
    *,
    record: bool = True,
) -> dict[str, PortfolioBacktest]:
    """Backtests each portfolio study's selected trial over the study's period (bars from
    MongoDB) and stores it in the study document as ``portfolio_backtest``.

    A study whose bars are gone is skipped (logged): the leaderboard itself never fails on it.

    Returns:
        Study name -> :class:`~quant_pipelines.optimizer.portfolio_report.PortfolioBacktest`.
    """
    by_name = {s["study_name"]: s for s in found if s.get("portfolio")}
    out: dict[str, PortfolioBacktest] = {}
    bars_repo = BarsRepository(db)
    for p in promotions:
        study = by_name.get(p["study"])
        if study is None:
            continue
        trial = next(
            (t for t in trials if t["study_name"] == p["study"] and t["number"] == p["trial"]),
            None,
        )
        full = studies.get_study(db, p["study"]) or {}
        if trial is None:
            continue
        oos = full.get("out_of_sample") or []
        bars = {
            s: b
            for s, b in bars_repo.read_many(
                study["symbols"], study.get("start"), study.get("end")
            ).items()
            if len(b)
        }
        try:
            report = portfolio_backtest(
                bars,
                study["strategy"],
                trial.get("params") or {},
                portfolio_options=full.get("portfolio_options"),
                holdout_start=_utc(oos[0]["start"]) if oos else None,
                periods_per_year=full.get("periods_per_year"),
                asset_class=study.get("asset_class"),
            )
        except (ValueError, TypeError, LookupError) as exc:
            _log.warning("portfolio_backtest of study %s not attached: %s", p["study"], exc)
            continue
        out[p["study"]] = report
        if record:
            doc = {**report.to_document(), "trial": p["trial"], "promoted": p["promoted"]}
            studies.upsert_study(db, p["study"], {"portfolio_backtest": doc})
    return out


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


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


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
