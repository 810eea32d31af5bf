"""Portfolio RL assets: one policy over an asset class's universe, and its held-out replay.

The replay books the policy's weights with the portfolio engine and sets it against the best
promoted portfolio strategy of the same universe on the same held-out bars, or against the
equal-weight benchmark when no portfolio strategy is promoted (the metadata says which).
"""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config and context
# parameter annotations of assets at definition time, and PEP 563 strings defeat it.

import base64

import dagster as dg

from quant_pipelines.defs.market_data.assets import ASSET_CLASSES, WORKLOAD_TAG, market_bars_key
from quant_pipelines.defs.resources import MongoResource, UniverseResource
from quant_pipelines.services.rl import (
    PortfolioReplayReport,
    replay_portfolio_policy,
    train_portfolio_policy,
)
from quant_pipelines.storage._signing_key import policy_signing_key


class RLPortfolioConfig(dg.Config):
    """The universe (an asset class's symbols unless listed), training budget and windows."""

    asset_class: str = "equity"
    symbols: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    algo: str = "ppo"
    total_timesteps: int = 20_000
    seed: int = 0
    lookback_days: int = 730
    holdout_days: int = 120
    wall_clock_seconds: float = 900.0
    max_drawdown: float = 0.35


def _symbols(config: RLPortfolioConfig, universe: UniverseResource) -> list[str]:
    return config.symbols or [s.name for s in universe.load().by_asset_class(config.asset_class)]


@dg.asset(
    deps=[
        dg.AssetDep(market_bars_key(c), partition_mapping=dg.AllPartitionMapping())
        for c in ASSET_CLASSES
    ],
    group_name="rl",
    kinds={"pytorch", "mongodb"},
    tags={WORKLOAD_TAG: "rl_training"},
    owners=["team:quant-research"],
)
def rl_portfolio_policy(
    context: dg.AssetExecutionContext,
    config: RLPortfolioConfig,
    mongo: MongoResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """A PPO policy allocating across an asset class's universe, trained under guardrails."""
    options = config.model_dump(exclude={"symbols"})
    report = train_portfolio_policy(
        mongo.repos(),
        _symbols(config, universe),
        signing_key=policy_signing_key(),
        run_id=context.run.run_id,
        **options,
    )
    return dg.MaterializeResult(
        metadata={
            "policy_id": dg.MetadataValue.text(report.policy_id),
            "sha256": dg.MetadataValue.text(report.sha256),
            "symbols": dg.MetadataValue.text(", ".join(report.symbols)),
            "timesteps": dg.MetadataValue.int(report.timesteps),
            "holdout_start": dg.MetadataValue.timestamp(report.holdout_start.to_pydatetime()),
            "train_seconds": dg.MetadataValue.float(round(report.seconds, 2)),
            "stop_reason": dg.MetadataValue.text(report.stop_reason),
        }
    )


@dg.asset(
    deps=[rl_portfolio_policy],
    group_name="rl",
    kinds={"pytorch", "mongodb"},
    tags={WORKLOAD_TAG: "rl_training"},
    owners=["team:quant-research"],
)
def rl_portfolio_policy_replay(
    config: RLPortfolioConfig, mongo: MongoResource
) -> dg.MaterializeResult:
    """The portfolio policy on held-out bars against the best promoted portfolio strategy."""
    report = replay_portfolio_policy(
        mongo.repos(), asset_class=config.asset_class, signing_key=policy_signing_key()
    )
    return dg.MaterializeResult(metadata=portfolio_replay_metadata(report))


def portfolio_replay_metadata(report: PortfolioReplayReport) -> dict[str, dg.MetadataValue]:
    """Metrics, the comparison table and the equity chart of a portfolio replay."""
    m = report.result.metrics
    png = base64.b64encode(report.equity_png).decode()
    columns = list(report.table.columns)
    return {
        "policy_id": dg.MetadataValue.text(report.policy_id),
        "symbols": dg.MetadataValue.text(", ".join(report.symbols)),
        "compared_with": dg.MetadataValue.text(report.compared_with),
        "strategy_promoted": dg.MetadataValue.bool(report.strategy_promoted),
        "sharpe": dg.MetadataValue.float(float(m["sharpe"])),
        "total_return": dg.MetadataValue.float(float(m["total_return"])),
        "max_drawdown": dg.MetadataValue.float(float(m["max_drawdown"])),
        "env_engine_gap": dg.MetadataValue.float(report.env_gap),
        "metrics": dg.MetadataValue.table(
            records=[
                dg.TableRecord({k: (v if k == "book" else float(v)) for k, v in r.items()})
                for r in report.table.to_dict(orient="records")
            ],
            schema=dg.TableSchema(
                columns=[dg.TableColumn(c, "string" if c == "book" else "float") for c in columns]
            ),
        ),
        "equity_curve": dg.MetadataValue.md(f"![equity](data:image/png;base64,{png})"),
    }
