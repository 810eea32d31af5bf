"""RL assets: one policy per symbol, trained under guardrails, then replayed on held-out bars.

One policy per symbol: a policy trades one instrument, and its held-out replay is that symbol's;
a per-class policy would mix instruments of different scales in one state. The partitions are
the universe's symbols (``symbol_partitions``, kept by ``universe_symbols_sensor``).
"""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config and context
# parameter annotations of assets at definition time, and PEP 563 strings defeat it.

import base64

import dagster as dg
import pandas as pd

from quant_pipelines.defs.market_data.assets import ASSET_CLASSES, WORKLOAD_TAG, market_bars_key
from quant_pipelines.defs.partitions import symbol_partitions
from quant_pipelines.defs.resources import MongoResource, UniverseResource
from quant_pipelines.services.rl import ReplayReport, TrainingReport, replay_policy, train_policy
from quant_pipelines.storage._signing_key import policy_signing_key


class RLTrainingConfig(dg.Config):
    """Training budget and data windows of one policy."""

    algo: str = "ppo"
    total_timesteps: int = 20_000
    seed: int = 0
    lookback_days: int = 730
    holdout_days: int = 120
    wall_clock_seconds: float = 900.0
    max_drawdown: float = 0.35


@dg.asset(
    partitions_def=symbol_partitions,
    deps=[
        dg.AssetDep(market_bars_key(c), partition_mapping=dg.AllPartitionMapping())
        for c in ASSET_CLASSES
    ],
    group_name="rl",
    kinds={"pytorch", "mongodb"},
    tags={WORKLOAD_TAG: "rl_training"},
    owners=["team:quant-research"],
)
def rl_policy(
    context: dg.AssetExecutionContext,
    config: RLTrainingConfig,
    mongo: MongoResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """A Stable-Baselines3 policy for one symbol, trained under guardrails, stored signed."""
    report = train_policy(
        mongo.repos(),
        context.partition_key,
        asset_class=universe.load().get(context.partition_key).asset_class,
        signing_key=policy_signing_key(),
        run_id=context.run.run_id,
        **config.model_dump(),
    )
    return dg.MaterializeResult(metadata=training_metadata(report))


@dg.asset(
    partitions_def=symbol_partitions,
    deps=[rl_policy],
    group_name="rl",
    kinds={"pytorch", "mongodb"},
    tags={WORKLOAD_TAG: "rl_training"},
    owners=["team:quant-research"],
)
def rl_policy_replay(
    context: dg.AssetExecutionContext,
    config: RLTrainingConfig,
    mongo: MongoResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """The latest policy replayed deterministically on held-out bars, against its benchmarks."""
    report = replay_policy(
        mongo.repos(),
        context.partition_key,
        asset_class=universe.load().get(context.partition_key).asset_class,
        signing_key=policy_signing_key(),
        default_max_drawdown=config.max_drawdown,
    )
    return dg.MaterializeResult(metadata=replay_metadata(report))


def training_metadata(report: TrainingReport) -> dict[str, dg.MetadataValue]:
    """Materialization metadata of a training report (the id and hash, never the key)."""
    return {
        "policy_id": dg.MetadataValue.text(report.policy_id),
        "sha256": dg.MetadataValue.text(report.sha256),
        "algo": dg.MetadataValue.text(report.algo),
        "timesteps": dg.MetadataValue.int(report.timesteps),
        "train_bars": dg.MetadataValue.int(report.train_bars),
        "holdout_start": dg.MetadataValue.timestamp(report.holdout_start.to_pydatetime()),
        "train_seconds": dg.MetadataValue.float(round(report.seconds, 2)),
        "stop_reason": dg.MetadataValue.text(report.stop_reason),
        "best_eval_reward": dg.MetadataValue.float(report.best_eval_reward or 0.0),
    }


def replay_metadata(report: ReplayReport) -> dict[str, dg.MetadataValue]:
    """Materialization metadata of a replay report: metrics, regime table, equity curve."""
    m = report.result.metrics
    png = base64.b64encode(report.equity_png).decode()
    metadata = {
        "policy_id": dg.MetadataValue.text(report.policy_id),
        "holdout_start": dg.MetadataValue.timestamp(report.holdout_start.to_pydatetime()),
        "holdout_signed": dg.MetadataValue.bool(report.holdout_signed),
        "sharpe": dg.MetadataValue.float(float(m["sharpe"])),
        "max_drawdown": dg.MetadataValue.float(float(m["max_drawdown"])),
        "drawdown_limit": dg.MetadataValue.float(report.drawdown_limit),
        "drawdown_compliant": dg.MetadataValue.bool(report.drawdown_compliant),
        "total_return": dg.MetadataValue.float(float(m["total_return"])),
        "buy_and_hold_return": dg.MetadataValue.float(float(m["buy_and_hold_return"])),
        "episode_length_mean": dg.MetadataValue.float(report.episode_length_mean),
        "episode_length_std": dg.MetadataValue.float(report.episode_length_std),
        "sharpe_change_vs_previous": dg.MetadataValue.float(
            report.sharpe_change_vs_previous or 0.0
        ),
        "by_regime": _table(report.by_regime),
        "equity_curve": dg.MetadataValue.md(f"![equity](data:image/png;base64,{png})"),
        "best_strategy": dg.MetadataValue.text(report.best_strategy or "none promoted"),
    }
    if report.best_strategy_sharpe is not None:
        metadata["best_strategy_sharpe"] = dg.MetadataValue.float(report.best_strategy_sharpe)
    return metadata


def _table(frame: pd.DataFrame) -> dg.MetadataValue:
    """A table of metrics per regime: text label columns, float metric columns."""
    text = {"label", "regime"}
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({str(k): (v if isinstance(v, str) else float(v)) for k, v in r.items()})
            for r in frame.to_dict(orient="records")
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(str(c), "string" if c in text else "float") for c in frame.columns
            ]
        ),
    )
