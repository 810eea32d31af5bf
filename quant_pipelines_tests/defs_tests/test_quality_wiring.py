"""The quality folder loads as Dagster loads it, and keeps to the wiring-only boundary."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import dagster as dg
import pytest

import quant_pipelines
from quant_pipelines.defs.market_data import assets as market_assets
from quant_pipelines.defs.quality import assets, checks, jobs, schedules, sensors
from quant_pipelines.defs.resources import bound_resources

MODULES = (assets, checks, jobs, schedules, sensors)
PACKAGE = Path(quant_pipelines.__file__).parent


@pytest.fixture
def defs(mongo_env) -> dg.Definitions:
    """The quality modules' top-level objects (as ``load_from_defs_folder`` collects them)."""
    loaded = [dg.load_definitions_from_module(m) for m in (market_assets, *MODULES)]
    return dg.Definitions.merge(*loaded, dg.Definitions(resources=bound_resources()))


def test_every_job_schedule_and_sensor_of_the_area_resolves(defs: dg.Definitions) -> None:
    for job in ("quality_models_job", "anomaly_dashboard_job", "alert_delivery_job"):
        assert defs.resolve_job_def(job).name == job
    schedule = defs.resolve_schedule_def("weekly_quality_models_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # costly: opt in
    assert defs.resolve_sensor_def("alert_delivery_sensor").default_status == (
        dg.DefaultSensorStatus.RUNNING
    )
    defs.validate_loadable(defs)


def test_scores_run_eagerly_past_the_gates_in_the_bulk_pool(defs: dg.Definitions) -> None:
    for asset_class in ("equity", "fx", "crypto"):
        scores = defs.resolve_assets_def(dg.AssetKey(["bar_anomaly_scores", asset_class]))
        condition = scores.automation_conditions_by_key[scores.key]
        assert condition.get_label() == "eager_after_blocking_checks"
        labels = {c.get_label() for c in condition.children}
        assert labels == {"eager", "all_deps_blocking_checks_passed"}
        assert scores.op.pool == "mongo_bulk"
        assert scores.partitions_def is not None
    dashboard = defs.resolve_assets_def("anomaly_dashboard")
    assert (
        dashboard.automation_conditions_by_key[dashboard.key]
        .get_label()
        .startswith("on_cron(0 20 * * 1-5")
    )


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [
        (
            "services/quality.py",
            {"dagster", "fastapi", "quant_pipelines.api", "quant_pipelines.defs"},
        ),
        ("services/calibration.py", {"dagster", "fastapi", "quant_pipelines.defs"}),
        *((f"defs/quality/{m.__name__.rsplit('.', 1)[1]}.py", {"pymongo"}) for m in MODULES),
    ],
)
def test_boundaries(path: str, forbidden: set[str]) -> None:
    tree = ast.parse((PACKAGE / path).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m and any(m.startswith(f) for f in forbidden)}
    importlib.import_module("quant_pipelines." + path.removesuffix(".py").replace("/", "."))
