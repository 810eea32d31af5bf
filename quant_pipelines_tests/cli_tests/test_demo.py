from __future__ import annotations

import re
import shutil
import warnings
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
    from quant_pipelines.services.kpis import LABELS

    shutil.copy(REPO / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_demo(sessions=330, trials=6, rl_timesteps=512) == 0
    captured = capsys.readouterr()
    out, lines = captured.out, captured.out.splitlines()
    # No notice spam: Dagster's beta/preview warnings (and NumPy's empty-slice ones) stay inside
    # the demo, nothing is printed.
    notices = (dg.BetaWarning, dg.PreviewWarning, RuntimeWarning)
    assert not [w for w in caught if issubclass(w.category, notices)]
    assert not [line for line in lines + captured.err.splitlines() if "Warning" in line]
    assert "Traceback" not in out + captured.err
    # The intended failure is one line: the check, its asset and the observed value.
    failed = [line for line in lines if "bars_have_valid_ohlc" in line]
    assert len(failed) == 1, failed
    assert "failed as intended" in failed[0] and "market_bars/equity" in failed[0]
    assert "observed invalid_rows=" in failed[0] and "(threshold 0)" in failed[0]
    for step in (
        "ingest, check and score",
        "Optuna study per strategy family",
        "leaderboard",
        "RL policy",
        "anomaly dashboard",
    ):
        assert step in out
    # Off a terminal, progress is one line per finished sub-item, no carriage returns.
    assert "\r" not in out and "1/3 equity ingested" in out
    # The summary table: a row per step with its outcome, duration and key figure.
    table = lines[lines.index("Summary") + 1 :]
    assert table[0].split()[:4] == ["#", "step", "outcome", "time"]
    rows = [line.split() for line in table[2:] if line.strip()[:2].strip().isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 12))
    bad = next(line for line in table if "bad equity batch" in line)
    assert "failed as intended" in bad and "blocking check" in bad
    ingest = next(line for line in table if " ingest " in line)
    assert re.search(r"ok\s+\d+\.\ds\s+[1-9][\d,]* bars in 3 classes", ingest), ingest
    assert sum(" ok " in line for line in table) == 10
    assert any(line.split()[0] == "total" for line in table if line.strip())
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
