"""Jobs of the optimization area: a study run per partition, and a manual leaderboard rebuild."""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs.market_data.assets import WORKLOAD_TAG
from quant_pipelines.defs.optimization.assets import optimization_study
from quant_pipelines.defs.optimization.leaderboard import optimization_leaderboard

optimize_strategy_job = dg.define_asset_job(
    name="optimize_strategy_job",
    selection=dg.AssetSelection.assets(optimization_study),
    tags={WORKLOAD_TAG: "optimization"},
    description="Run an Optuna study for one (strategy, asset class) partition.",
)

optimization_leaderboard_job = dg.define_asset_job(
    name="optimization_leaderboard_job",
    selection=dg.AssetSelection.assets(optimization_leaderboard),
    description="Rebuild the leaderboard and gate each study's pick (it also runs by itself "
    "after new study materializations).",
)
