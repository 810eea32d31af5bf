"""The one ``dg.Definitions`` of the project: loads and merges each area under ``defs/``."""

from __future__ import annotations

import dagster as dg

from quant_pipelines.defs import kpis, market_data, optimization, quality, rl
from quant_pipelines.defs.resources import MarketDataSource, MongoIOManager, mongo_resource
from quant_pipelines.settings import load_settings


def build_definitions() -> dg.Definitions:
    """Merges the areas' definitions and binds the shared resources."""
    settings = load_settings()
    mongo = mongo_resource(settings)
    resources = {
        "mongo": mongo,
        "mongo_io": MongoIOManager(mongo=mongo),
        "market_data": MarketDataSource(),
    }
    return dg.Definitions.merge(
        market_data.build_defs(),
        quality.build_defs(),
        optimization.build_defs(),
        rl.build_defs(),
        kpis.build_defs(),
        dg.Definitions(resources=resources),
    )


defs = build_definitions()


def parallel_study_job_def() -> dg.JobDefinition:
    """``parallel_study_job`` resolved from fresh Definitions (a ``dg.reconstructable`` target)."""
    return build_definitions().resolve_job_def("parallel_study_job")
