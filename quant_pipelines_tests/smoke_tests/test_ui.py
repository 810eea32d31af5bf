"""UI smoke test: real runs in a temporary home, then the webserver in headless Chromium."""

from __future__ import annotations

from urllib.parse import quote

import dagster as dg
import pytest

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository
from quant_pipelines_tests.smoke_tests.conftest import BARS_END, BARS_START, SCREENSHOTS

pytestmark = pytest.mark.slow

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LEADERBOARD_COLUMNS = ["rank", "study", "validation", "holdout_sharpe", "deflated_sharpe", "pbo"]
ANOMALY_METRICS = ["anomalies_warning", "false_positive_rate"]


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, **kwargs) -> None:
    config = kwargs.pop("run_config", {})
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, run_config={**QUIET, **config}, **kwargs
    )
    assert result.success, job


@pytest.fixture
def materialized(instance: dg.DagsterInstance, btc_bars) -> dg.DagsterInstance:
    """A study, the leaderboard, one crypto ingest and the anomaly dashboard, as real runs."""
    from quant_pipelines.definitions import build_definitions

    defs = build_definitions()  # after mongo_env / DAGSTER_HOME are set
    study = {"start": BARS_START, "end": BARS_END, "n_trials": 6, "study_name": "smoke"}
    _run(
        defs,
        instance,
        "optimize_strategy_job",
        partition_key=dg.MultiPartitionKey({"strategy": "sma_crossover", "asset_class": "crypto"}),
        run_config={"ops": {"optimization_study": {"config": study}}},
    )
    _run(defs, instance, "optimization_leaderboard_job")
    # The crypto scores fit on each symbol's trailing history: give ETHUSD one too.
    eth = SyntheticSource(seed=5).bars("ETHUSD", BARS_START, "2023-05-31")
    BarsRepository(btc_bars).upsert(eth, symbol="ETHUSD", source="t", batch_id="t")
    _run(defs, instance, "ingest_crypto_bars_job", partition_key="2023-06-01")
    _run(defs, instance, "anomaly_dashboard_job")
    return instance


def test_asset_graph_and_leaderboard_render(materialized, webserver: str, chromium_context):
    page = chromium_context.new_page()
    page.set_default_timeout(60_000)

    # (a) The global asset lineage graph, with the optimization group unfolded into its assets.
    page.goto(f"{webserver}/asset-groups?expanded={quote('global@global:optimization')}")
    nodes = page.locator("svg foreignObject")
    nodes.get_by_text("optimization_study", exact=True).first.wait_for()
    nodes.get_by_text("_leaderboard").first.wait_for()  # zoomed out, its label is elided
    for group in ("market_data", "quality", "kpis"):
        nodes.get_by_text(group, exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)  # let the graph finish its layout animation
    page.screenshot(path=str(SCREENSHOTS / "asset-graph.png"))

    # (b) The anomaly dashboard's metrics render on its asset page.
    page.goto(f"{webserver}/assets/anomaly_dashboard")
    for metric in ANOMALY_METRICS:
        page.get_by_text(metric, exact=True).first.wait_for()

    # (c) The leaderboard asset's page renders the leaderboard table.
    page.goto(f"{webserver}/assets/optimization_leaderboard")
    header = page.locator("table:not(:has(table)):has(th:text-is('holdout_sharpe')) th")
    header.first.wait_for()
    columns = [c.strip() for c in header.all_inner_texts()]
    assert all(c in columns for c in LEADERBOARD_COLUMNS), columns
    rows = page.locator("table:not(:has(table)):has(th:text-is('holdout_sharpe')) tbody tr")
    assert 1 <= rows.count() <= 6
    assert "smoke" in rows.first.inner_text()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / "leaderboard.png"))
