"""The KPI report: materialized against the test MongoDB, values computed from seeded documents."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from pymongo.database import Database

from quant_pipelines.defs.kpis.assets import kpi_report
from quant_pipelines.defs.resources import MongoResource
from quant_pipelines.services.kpis import LABELS
from quant_pipelines.services.kpis import kpi_report as compute_kpi_report
from quant_pipelines.storage.repositories import Repositories

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def _seed(db: Database) -> None:
    db.studies.insert_many(
        [
            {"study_name": "a", "progress": {"trials_per_hour": 10.0}},
            {"study_name": "b", "progress": {"trials_per_hour": 30.0}},
            {"study_name": "c", "progress": {"trials_per_hour": 20.0}},
        ]
    )
    replay = {"episode_length_mean": 100.0, "episode_length_std": 10.0}
    db.rl_policies.insert_many(
        [
            {
                "policy_id": "p1",
                "symbol": "SPY",
                "created_at": NOW,
                "replay": {"sharpe": 1.0, "drawdown_compliant": True, **replay},
            },
            {
                "policy_id": "p2",
                "symbol": "BTCUSD",
                "created_at": NOW,
                "replay": {"sharpe": 0.5, "drawdown_compliant": False, **replay},
            },
            {  # an older replay of SPY: only the latest per symbol counts
                "policy_id": "p0",
                "symbol": "SPY",
                "created_at": NOW - dt.timedelta(days=7),
                "replay": {"sharpe": -3.0, "drawdown_compliant": False, **replay},
            },
        ]
    )
    db.ingest_batches.insert_many(
        [
            {"batch_id": "b1", "anomalies_by_severity": {"warning": 2, "critical": 1}},
            {"batch_id": "b2", "anomalies_by_severity": {"warning": 0, "critical": 1}},
            {"batch_id": "b3"},  # not scored yet: not counted
        ]
    )


def test_kpi_report_computes_the_seeded_values_and_records_one_period(mongo_db: Database) -> None:
    _seed(mongo_db)
    report = compute_kpi_report(Repositories.over(mongo_db), now=NOW)
    assert report.period == "2026-11-23"
    assert report.metrics["trials_per_hour"] == pytest.approx(20.0)  # median of 10, 30, 20
    assert report.metrics["policy_sharpe"] == pytest.approx(0.75)  # latest per symbol
    assert report.metrics["drawdown_compliance"] == pytest.approx(0.5)
    assert report.metrics["episode_length_cv"] == pytest.approx(0.1)
    assert report.metrics["anomalies_per_batch"] == pytest.approx(2.0)  # (3 + 1) / 2
    assert report.metrics["best_sharpe_improvement"] is None  # nothing promoted
    assert "none promoted" in report.markdown()
    assert set(report.metrics) == set(LABELS)
    stored = mongo_db.kpis.find_one({"kpi": "report.trials_per_hour", "period": "2026-11-23"})
    assert stored["value"] == pytest.approx(20.0)

    # The same day again overwrites; the next day adds a period.
    compute_kpi_report(Repositories.over(mongo_db), now=NOW + dt.timedelta(hours=3))
    assert mongo_db.kpis.count_documents({"kpi": "report.trials_per_hour"}) == 1
    later = compute_kpi_report(Repositories.over(mongo_db), now=NOW + dt.timedelta(days=1))
    assert later.periods_recorded == 2


def test_kpi_report_asset_materializes_its_metrics_as_metadata(
    mongo_resource: MongoResource, mongo_db: Database
) -> None:
    _seed(mongo_db)
    result = dg.materialize([kpi_report], resources={"mongo": mongo_resource})
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["trials_per_hour"].value == pytest.approx(20.0)
    assert meta["policy_sharpe"].value == pytest.approx(0.75)
    assert "best_sharpe_improvement" not in meta  # None is not plotted
    assert meta["periods_recorded"].value == 1
    assert "| optimizer trials per hour (median over studies) | 20 |" in meta["report"].value
    assert mongo_db.kpis.count_documents({"kpi": {"$regex": "^report\\."}}) == len(LABELS)


def test_kpi_report_is_requested_once_a_day_after_0630_new_york() -> None:
    """The automation condition requests one run per tick, even with no upstream update."""
    ny = ZoneInfo("America/New_York")
    with dg.instance_for_test() as instance:
        cursor = None
        requested = {}
        for hour, minute in [(6, 0), (6, 31), (6, 45), (12, 0)]:
            when = dt.datetime(2026, 11, 24, hour, minute, tzinfo=ny)
            result = dg.evaluate_automation_conditions(
                defs=dg.Definitions(
                    assets=[kpi_report], resources={"mongo": MongoResource(uri="mongodb://x")}
                ),
                instance=instance,
                cursor=cursor,
                evaluation_time=when,
            )
            cursor = result.cursor
            requested[(hour, minute)] = result.total_requested
    assert requested == {(6, 0): 0, (6, 31): 1, (6, 45): 0, (12, 0): 0}
