"""RL runner wiring: train a policy per symbol, replay it on a held-out period, weekly schedule."""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config and context
# parameter annotations of assets at definition time, and PEP 563 strings defeat it.

import base64

import dagster as dg
import pandas as pd

from quant_pipelines.backtest import (
    get_strategy,
    metrics_by_regime,
    plot_equity,
    run_backtest,
)
from quant_pipelines.defs.market_data import ASSET_CLASSES, WORKLOAD_TAG, market_bars_key
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.marketdata import load_universe
from quant_pipelines.rl import Guardrails, RLEngine
from quant_pipelines.services import promoted_strategies
from quant_pipelines.settings import load_settings
from quant_pipelines.signals import regimes
from quant_pipelines.storage import GridFSPolicyStore
from quant_pipelines.storage._signing_key import policy_signing_key
from quant_pipelines.storage.kpis import upsert_kpi

#: One policy per symbol: a policy trades one instrument, and its held-out replay is that
#: symbol's; a per-class policy would mix instruments of different scales in one state.
rl_symbol_partitions = dg.StaticPartitionsDefinition(list(load_universe().names))


class RLTrainingConfig(dg.Config):
    """Training budget and data windows of one policy."""

    algo: str = "ppo"
    total_timesteps: int = 20_000
    seed: int = 0
    lookback_days: int = 730
    holdout_days: int = 120
    wall_clock_seconds: float = 900.0
    max_drawdown: float = 0.35


def _windows(config: RLTrainingConfig) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    end = pd.Timestamp.now(tz="UTC").normalize() + pd.Timedelta(days=1)
    holdout = end - pd.Timedelta(days=config.holdout_days)
    start = holdout - pd.Timedelta(days=config.lookback_days)
    return start, holdout, end


def _store(mongo: MongoResource) -> GridFSPolicyStore:
    return GridFSPolicyStore(mongo.get_db())


def _asset_class(symbol: str) -> str:
    return load_universe().get(symbol).asset_class


@dg.asset(
    partitions_def=rl_symbol_partitions,
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
    context: dg.AssetExecutionContext, config: RLTrainingConfig, mongo: MongoResource
) -> dg.MaterializeResult:
    """A Stable-Baselines3 policy for one symbol, trained under guardrails, stored in GridFS."""
    symbol = context.partition_key
    start, holdout, _ = _windows(config)
    bars = mongo.bars().read(symbol, start, holdout)
    if len(bars) < 200:
        raise dg.Failure(
            description=f"{len(bars)} bars of {symbol} before {holdout.date()}: need >= 200; "
            f"materialize market_bars/{_asset_class(symbol)} first",
            allow_retries=False,
        )
    guardrails = Guardrails(
        max_timesteps=max(config.total_timesteps, 1),
        wall_clock_seconds=config.wall_clock_seconds,
        max_drawdown=config.max_drawdown,
    )
    run_dir = load_settings().dagster_home / "rl" / "runs" / f"{symbol}-{context.run.run_id[:8]}"
    engine = RLEngine(store=_store(mongo), workdir=run_dir, signing_key=policy_signing_key())
    policy = engine.train(
        bars,
        algo=config.algo,
        total_timesteps=config.total_timesteps,
        seed=config.seed,
        guardrails=guardrails,
        run_dir=run_dir,
        save=False,
    )
    policy.policy_id = f"{symbol}-{config.algo}-s{config.seed}-{context.run.run_id[:8]}"
    policy_id = engine.save(policy)
    engine.store.record_metrics(
        policy_id,
        symbol=symbol,
        asset_class=_asset_class(symbol),
        train_period={"start": str(bars.index[0]), "end": str(bars.index[-1])},
        holdout_start=holdout.to_pydatetime(),
        run_id=context.run.run_id,
    )
    metrics = policy.metrics or {}
    return dg.MaterializeResult(
        metadata={
            "policy_id": dg.MetadataValue.text(policy_id),
            "sha256": dg.MetadataValue.text(policy.sha256 or ""),
            "algo": dg.MetadataValue.text(config.algo),
            "timesteps": dg.MetadataValue.int(int(policy.num_timesteps or 0)),
            "train_bars": dg.MetadataValue.int(len(bars)),
            "train_seconds": dg.MetadataValue.float(round(float(metrics.get("seconds", 0.0)), 2)),
            "stop_reason": dg.MetadataValue.text(str(metrics.get("stop_reason", "completed"))),
            "best_eval_reward": dg.MetadataValue.float(
                float(metrics.get("best_eval_reward") or 0.0)
            ),
        }
    )


def _best_strategy_result(db, symbol: str, bars: pd.DataFrame, asset_class: str):
    """The best promoted trial whose study covered ``symbol``, replayed on ``bars`` (only
    trials that passed the overfitting gate count; (None, None) when none is promoted)."""
    for row in promoted_strategies(db, asset_class=asset_class, symbol=symbol):
        strategy = get_strategy(row["strategy"])
        positions = strategy.positions(bars, **row["params"])
        return row, run_backtest(bars, positions, asset_class=asset_class)
    return None, None


def _regime_table(result, bars: pd.DataFrame) -> dg.MetadataValue:
    # Labels come from all bars (the warm-up included, they are causal), then are cut to the
    # replayed range.
    labels = regimes(bars)["label"].reindex(result.equity.index)
    table = metrics_by_regime(result, labels).reset_index()
    columns = [str(c) for c in table.columns]
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({str(k): (v if isinstance(v, str) else float(v)) for k, v in r.items()})
            for r in table.to_dict(orient="records")
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(c, "string" if c in {"label", "regime"} else "float")
                for c in columns
            ]
        ),
    )


@dg.asset(
    partitions_def=rl_symbol_partitions,
    deps=[rl_policy],
    group_name="rl",
    kinds={"pytorch", "mongodb"},
    tags={WORKLOAD_TAG: "rl_training"},
    owners=["team:quant-research"],
)
def rl_policy_replay(
    context: dg.AssetExecutionContext, config: RLTrainingConfig, mongo: MongoResource
) -> dg.MaterializeResult:
    """The latest policy replayed deterministically on held-out bars, against its benchmarks."""
    symbol = context.partition_key
    db = mongo.get_db()
    store = _store(mongo)
    versions = store.latest(symbol=symbol)
    if not versions:
        raise dg.Failure(description=f"no RL policy for {symbol}; materialize rl_policy first")
    current = versions[0]
    engine = RLEngine(store=store, signing_key=policy_signing_key())
    policy = engine.load(current["policy_id"])  # refuses a policy whose signature fails
    holdout = pd.Timestamp(current["holdout_start"])
    holdout = holdout.tz_localize("UTC") if holdout.tzinfo is None else holdout
    warmup = holdout - pd.Timedelta(days=90)
    bars = mongo.bars().read(symbol, warmup, None)
    held_out = bars[bars.index >= holdout]
    if len(held_out) < 10:
        raise dg.Failure(description=f"only {len(held_out)} held-out bars of {symbol}")
    asset_class = _asset_class(symbol)
    result = engine.replay(policy, bars, start=held_out.index[0], asset_class=asset_class)
    result_bars = bars[bars.index >= held_out.index[0]]
    episodes = engine.evaluate_episodes(policy, bars, n_episodes=8, seed=0, start=held_out.index[0])
    m = result.metrics
    limit = float((policy.guardrails or {}).get("max_drawdown") or config.max_drawdown)  # signed
    compliant = abs(float(m["max_drawdown"])) <= limit
    previous = next(
        (v for v in versions[1:] if (v.get("replay") or {}).get("sharpe") is not None), None
    )
    sharpe_change = float(m["sharpe"]) - float(previous["replay"]["sharpe"]) if previous else None
    best_row, best_result = _best_strategy_result(db, symbol, result_bars, asset_class)
    replay_doc = {
        "sharpe": float(m["sharpe"]),
        "max_drawdown": float(m["max_drawdown"]),
        "total_return": float(m["total_return"]),
        "buy_and_hold_return": float(m["buy_and_hold_return"]),
        "drawdown_limit": limit,
        "drawdown_compliant": compliant,
        "episode_length_mean": float(episodes["ep_len_mean"]),
        "episode_length_std": float(episodes["ep_len_std"]),
        "sharpe_change_vs_previous": sharpe_change,
        "held_out": {"start": str(held_out.index[0]), "end": str(held_out.index[-1])},
    }
    store.record_metrics(current["policy_id"], replay=replay_doc)
    period = str(held_out.index[-1].date())
    for name, value in {
        "policy_sharpe": replay_doc["sharpe"],
        "policy_max_drawdown": replay_doc["max_drawdown"],
        "drawdown_compliance": 1.0 if compliant else 0.0,
        "episode_length_mean": replay_doc["episode_length_mean"],
        "episode_length_std": replay_doc["episode_length_std"],
        "policy_sharpe_change": sharpe_change,
    }.items():
        upsert_kpi(
            db,
            f"rl.{name}.{symbol}",
            period,
            value,
            details={"policy_id": current["policy_id"]},
            source="rl_policy_replay",
        )
    png = base64.b64encode(plot_equity(result)).decode()
    metadata = {
        "policy_id": dg.MetadataValue.text(current["policy_id"]),
        "sharpe": dg.MetadataValue.float(replay_doc["sharpe"]),
        "max_drawdown": dg.MetadataValue.float(replay_doc["max_drawdown"]),
        "drawdown_limit": dg.MetadataValue.float(limit),
        "drawdown_compliant": dg.MetadataValue.bool(compliant),
        "total_return": dg.MetadataValue.float(replay_doc["total_return"]),
        "buy_and_hold_return": dg.MetadataValue.float(replay_doc["buy_and_hold_return"]),
        "episode_length_mean": dg.MetadataValue.float(replay_doc["episode_length_mean"]),
        "episode_length_std": dg.MetadataValue.float(replay_doc["episode_length_std"]),
        "sharpe_change_vs_previous": dg.MetadataValue.float(sharpe_change or 0.0),
        "by_regime": _regime_table(result, bars),
        "equity_curve": dg.MetadataValue.md(f"![equity](data:image/png;base64,{png})"),
    }
    if best_result is None:
        metadata["best_strategy"] = dg.MetadataValue.text("none promoted")
    else:
        metadata["best_strategy"] = dg.MetadataValue.text(
            f"{best_row['study']} #{best_row['trial']}"
        )
        metadata["best_strategy_sharpe"] = dg.MetadataValue.float(
            float(best_result.metrics["sharpe"])
        )
    return dg.MaterializeResult(metadata=metadata)


rl_training_job = dg.define_asset_job(
    name="rl_training_job",
    selection=dg.AssetSelection.assets(rl_policy, rl_policy_replay),
    tags={WORKLOAD_TAG: "rl_training", "dagster/priority": "-1"},
    description="Train one symbol's policy under guardrails, then replay it on held-out bars.",
)


@dg.schedule(
    name="weekly_rl_training_schedule",
    cron_schedule="0 10 * * 6",
    execution_timezone="America/New_York",
    job=rl_training_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Saturday 10:00 New York, at low priority, one training at a time.",
)
def weekly_rl_training_schedule(context: dg.ScheduleEvaluationContext):
    """One low-priority training run per symbol at the weekend, outside market hours."""
    when = (context.scheduled_execution_time or pd.Timestamp.now(tz="UTC")).date().isoformat()
    return [
        dg.RunRequest(
            run_key=f"rl:{symbol}:{when}",
            partition_key=symbol,
            tags={WORKLOAD_TAG: "rl_training", "dagster/priority": "-1"},
        )
        for symbol in rl_symbol_partitions.get_partition_keys()
    ]


def build_defs() -> dg.Definitions:
    """Definitions of the RL area."""
    return dg.Definitions(
        assets=[rl_policy, rl_policy_replay],
        jobs=[rl_training_job],
        schedules=[weekly_rl_training_schedule],
    )
