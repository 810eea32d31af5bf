"""RL jobs and schedules: weekly low-priority training and replay of every symbol."""

# No `from __future__ import annotations` here, as in ``assets.py``: Dagster resolves the
# context annotation of a schedule at definition time.

import dagster as dg
import pandas as pd

from quant_pipelines.defs.market_data.assets import WORKLOAD_TAG
from quant_pipelines.defs.partitions import SYMBOL_PARTITIONS
from quant_pipelines.defs.rl.assets import rl_policy, rl_policy_replay

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
        for symbol in context.instance.get_dynamic_partitions(SYMBOL_PARTITIONS)
    ]
