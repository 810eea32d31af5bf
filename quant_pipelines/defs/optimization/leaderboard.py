"""The optimization leaderboard asset and its promotion gate (a blocking asset check).

The leaderboard runs after new study materializations (declarative automation, see
:data:`LEADERBOARD_AUTOMATION`) instead of a nightly schedule.
"""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config and context
# parameter annotations of assets at definition time, and PEP 563 strings defeat it.

import base64
from typing import Literal

import dagster as dg
import pandas as pd

from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.optimizer import GateThresholds
from quant_pipelines.services import PromotionCheck, build_leaderboard, check_promotions

#: Table columns and their types, in display order.
COLUMNS: dict[str, str] = {
    "rank": "int",
    "study": "string",
    "params": "string",
    "in_sample": "float",
    "validation": "float",
    "holdout": "float",
    "holdout_sharpe": "float",
    "buy_hold_sharpe": "float",
    "deflated_sharpe": "float",
    "pbo": "float",
    "spa_pvalue": "float",
    "max_drawdown": "float",
    "n_trades": "int",
    "promoted": "bool",
    "reason": "string",
}
RANK_LABELS = {
    "validation": "validation (mean over walk-forward folds / CPCV paths, in sample)",
    "deflated_sharpe": "deflated Sharpe ratio",
    "in_sample": "in-sample objective",
    "holdout": "SELECTION ON THE HOLDOUT (spends it; nothing is promoted)",
}


class LeaderboardConfig(dg.Config):
    """Which trials the leaderboard shows, how it ranks them, and the promotion gate."""

    top_n: int = 20
    objective: str = ""
    strategy: str = ""
    asset_class: str = ""
    rank_by: Literal["validation", "deflated_sharpe", "in_sample", "holdout"] = "validation"
    max_pbo: float = 0.5
    min_dsr: float = 0.95
    max_spa_pvalue: float = 0.10


def _cell(column: str, value: object) -> object:
    if value is None:
        return None
    if COLUMNS[column] == "float":
        return round(float(value), 3)
    if COLUMNS[column] == "int":
        return int(value)
    return value


def _table(rows: list[dict]) -> dg.MetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(c, t) for c, t in COLUMNS.items()])
    records = [dg.TableRecord({c: _cell(c, r.get(c)) for c in COLUMNS}) for r in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


#: Rebuild after any study partition was materialized since the leaderboard was last requested,
#: once no study run is in progress upstream. Not ``eager()``: eager also waits while any
#: dependency partition is missing, and most (strategy, asset class) partitions of
#: ``optimization_study`` are never materialized (only the requested ones), so eager would
#: never fire.
LEADERBOARD_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after new study materializations")


@dg.asset(
    deps=[dg.AssetKey("optimization_study")],
    automation_condition=LEADERBOARD_AUTOMATION,
    group_name="optimization",
    kinds={"mongodb"},
    io_manager_key="mongo_io",
    owners=["team:quant-research"],
)
def optimization_leaderboard(
    config: LeaderboardConfig, mongo: MongoResource
) -> dg.Output[pd.DataFrame]:
    """Trials ranked within each objective on validation folds, and the promotions they earn."""
    report = build_leaderboard(
        mongo.get_db(),
        objective=config.objective or None,
        strategy=config.strategy or None,
        asset_class=config.asset_class or None,
        rank_by=config.rank_by,
        thresholds=GateThresholds(config.max_pbo, config.min_dsr, config.max_spa_pvalue),
        limit=config.top_n,
    )
    return dg.Output(pd.DataFrame(report.rows), metadata=_metadata(report))


@dg.asset_check(asset=optimization_leaderboard, blocking=True)
def promoted_rows_pass_overfitting_tests(mongo: MongoResource) -> dg.AssetCheckResult:
    """Only trials that pass PBO, DSR, SPA and the holdout test stay promoted (the gate)."""
    check = check_promotions(mongo.get_db())
    failing = [r for r in check.rows if not r["passes"]]
    why = "; ".join(f"{r['study']} #{r['trial']}: {', '.join(r['reasons'])}" for r in failing)
    return dg.AssetCheckResult(
        passed=check.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=why or None,
        metadata=_check_metadata(check, failing),
    )


def _check_metadata(check: PromotionCheck, failing: list[dict]) -> dict[str, dg.MetadataValue]:
    """The gate's observed values and its thresholds."""
    thresholds = check.rows[0]["thresholds"] if check.rows else GateThresholds().to_dict()
    return {
        "promoted": dg.MetadataValue.int(check.n_promoted),
        "failing": dg.MetadataValue.int(len(failing)),
        "thresholds": dg.MetadataValue.json(thresholds),
        "observed": dg.MetadataValue.json(check.rows),
    }


def _metadata(report) -> dict[str, dg.MetadataValue]:
    objectives = sorted({r["objective_name"] for r in report.rows})
    metadata: dict[str, dg.MetadataValue] = {
        "rank_by": dg.MetadataValue.text(RANK_LABELS[report.rank_by]),
        "studies": dg.MetadataValue.int(report.n_studies),
        "promoted": dg.MetadataValue.int(len(report.promoted)),
        "promotions": dg.MetadataValue.md(_promotions_md(report.promotions)),
        "rows": dg.MetadataValue.int(len(report.rows)),
    }
    for obj in objectives:
        rows = [r for r in report.rows if r["objective_name"] == obj]
        metadata[f"leaderboard_{obj}"] = _table(rows)
    best = max((p["observed"]["holdout_sharpe"] for p in report.promoted), key=float, default=None)
    for study, backtest in report.portfolio_backtests.items():
        metadata[f"portfolio_backtest_{study}"] = dg.MetadataValue.md(_portfolio_md(backtest))
    metadata["portfolio_backtests"] = dg.MetadataValue.int(len(report.portfolio_backtests))
    metadata["best_promoted_holdout_sharpe"] = (
        dg.MetadataValue.float(round(float(best), 4))
        if best is not None
        else dg.MetadataValue.text("none promoted")
    )
    return metadata


def _portfolio_md(backtest) -> str:
    """A portfolio study's selected trial: equity against the equal-weight benchmark (image)
    and each symbol's contribution (table)."""
    png = base64.b64encode(backtest.png).decode()
    m = backtest.metrics
    return (
        f"**{backtest.strategy}** on {len(backtest.symbols)} symbols: Sharpe "
        f"{m['sharpe']:.3f} (equal-weight benchmark {m['benchmark_sharpe']:.3f}), total return "
        f"{m['total_return']:.3f}, turnover {m['turnover']:.2f}, avg holdings "
        f"{m['avg_holdings']:.2f}\n\n![equity vs benchmark](data:image/png;base64,{png})\n\n"
        + backtest.markdown()
    )


def _promotions_md(promotions: list[dict]) -> str:
    if not promotions:
        return "no studies"
    lines = ["| study | trial | promoted | why |", "|---|---|---|---|"]
    for p in promotions:
        lines.append(
            f"| {p['study']} | {p['trial']} | {'yes' if p['promoted'] else 'no'} | {p['reason']} |"
        )
    return "\n".join(lines)
