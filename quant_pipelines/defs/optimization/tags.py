"""Run tags and priorities of the optimization area (shared by the asset, jobs and sensors)."""

from __future__ import annotations

from quant_pipelines.defs.market_data.assets import WORKLOAD_TAG

#: Run priority per asset class (higher runs first); ingestion runs at 10.
ASSET_CLASS_PRIORITY = {"equity": 3, "fx": 2, "crypto": 1}
ASSET_CLASS_TAG = "quant_pipelines/asset_class"
#: The request a run serves (``optimization_requests.request_id``).
REQUEST_TAG = "quant_pipelines/request_id"
#: The run key of a request's run: the request id, then ``<id>:resume-<n>`` for the runs that
#: resume its study after a run stopped at its wall-clock limit.
REQUEST_RUN_KEY_TAG = "quant_pipelines/request_run_key"


def run_tags(asset_class: str) -> dict[str, str]:
    """Tags that give a study run its asset-class priority and concurrency limits."""
    return {
        WORKLOAD_TAG: "optimization",
        ASSET_CLASS_TAG: asset_class,
        "dagster/priority": str(ASSET_CLASS_PRIORITY.get(asset_class, 0)),
    }
