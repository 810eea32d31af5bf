from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from pymongo.database import Database

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_loop_as_recorded_dagster_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mongo_env: Database, capsys
) -> None:
    from quant_pipelines.cli.demo import run_demo
    from quant_pipelines.defs.kpis import LABELS

    shutil.copy(REPO / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert run_demo(sessions=330, trials=6, rl_timesteps=512) == 0
    out = capsys.readouterr().out
    for step in (
        "ingest, check and score",
        "Optuna study per strategy family",
        "leaderboard",
        "RL policy",
        "anomaly dashboard",
    ):
        assert step in out
    db = mongo_env
    assert db.bars.count_documents({}) > 1000
    assert db.bars.count_documents({"quality.scored_at": {"$exists": True}}) > 1000
    assert db.studies.count_documents({}) >= 3
    assert db.rl_policies.count_documents({"replay": {"$exists": True}}) == 1
    assert db.kpis.count_documents({"kpi": {"$regex": "^report\\."}}) == len(LABELS)
    resolved = db.anomalies.find_one({"status": "resolved"})
    assert resolved is not None and resolved["time_to_resolution_s"] >= 0
    assert db.alert_outbox.count_documents({"channel": "webhook", "status": "sent"}) >= 1
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        jobs = {r.dagster_run.job_name for r in instance.get_run_records()}
    assert {"ingest_equity_bars_job", "optimize_strategy_job", "rl_training_job"} <= jobs
