"""Scale-out on one machine: one study optimized by 1 and then 2 parallel Dagster workers."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg

from quant_pipelines.bench._report import Figure
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository, EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port

_REPO = Path(__file__).resolve().parents[2]
_SYMBOL = "SPY"


def run_parallel_study(
    instance: dg.DagsterInstance, *, study_name: str, workers: int, n_trials: int
) -> dict:
    """Runs ``parallel_study_job`` with the multiprocess executor; returns the collector output."""
    from quant_pipelines.definitions import parallel_study_job_def

    config = {
        "study_name": study_name,
        "strategy": "sma_crossover",
        "symbols": [_SYMBOL],
        "start": "2000-01-01",
        "end": "2030-01-01",
        "n_trials": n_trials,
        "workers": workers,
        "seed": 11,
    }
    ops = {name: {"config": config} for name in ("study_workers", "study_worker")}
    with dg.execute_job(
        dg.reconstructable(parallel_study_job_def), instance=instance, run_config={"ops": ops}
    ) as result:
        if not result.success:
            raise RuntimeError(f"parallel_study_job failed (run {result.run_id})")
        return result.output_for_node("study_workers_done")


def run(*, quick: bool = False) -> list[Figure]:
    """Trials/hour of one study with 2 workers against 1 worker, same data, same server."""
    n_trials = 60 if quick else 400
    saved = {k: os.environ.get(k) for k in ("MONGODB_URI", "MONGODB_DB", "DAGSTER_HOME")}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
        server.start()
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(_REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        os.environ |= {"MONGODB_URI": server.uri, "MONGODB_DB": "bench", "DAGSTER_HOME": str(home)}
        try:
            db = make_client(server.uri)["bench"]
            ensure_indexes(db)
            bars = SyntheticSource(seed=0).bars("SPY", "2000-01-01", "2020-01-01")
            BarsRepository(db).upsert(bars, symbol="SPY", source="bench", batch_id="bench")
            with dg.DagsterInstance.get() as instance:
                one = run_parallel_study(instance, study_name="one", workers=1, n_trials=n_trials)
                two = run_parallel_study(instance, study_name="two", workers=2, n_trials=n_trials)
            for name in ("one", "two"):
                numbers = [t["number"] for t in db.trials.find({"study_name": name})]
                if len(numbers) != len(set(numbers)) or len(numbers) < n_trials:
                    raise RuntimeError(f"study {name}: {len(numbers)} trials, duplicates or loss")
        finally:
            server.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return [
        Figure(
            "optimizer",
            f"one study, 2 parallel Dagster workers on the MongoDB journal ({n_trials} trials)",
            two["trials_per_hour"],
            "trials/h",
            "the same study with 1 worker",
            one["trials_per_hour"],
        )
    ]
