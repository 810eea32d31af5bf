from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.backtest import get_strategy
from quant_pipelines.defs.kpis.assets import kpi_report
from quant_pipelines.defs.optimization.assets import optimization_study
from quant_pipelines.defs.optimization.leaderboard import (
    optimization_leaderboard,
    promoted_rows_pass_overfitting_tests,
)
from quant_pipelines.defs.optimization.planning import plan_request_runs, request_run_config
from quant_pipelines.defs.optimization.sensors import optimization_request_sensor
from quant_pipelines.defs.optimization.tags import ASSET_CLASS_PRIORITY, REQUEST_TAG
from quant_pipelines.defs.resources import MongoIOManager, MongoResource, UniverseResource
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository, requests
from quant_pipelines_tests.defs_tests._lifecycle import evaluate_run_sensor

pytestmark = pytest.mark.slow

START, END = "2022-01-01", "2023-12-31"


@pytest.fixture
def crypto_bars(mongo_db: Database, small_universe) -> None:
    """Two years of BTCUSD bars in MongoDB, straight through the repository."""
    source = SyntheticSource(seed=5)
    bars = source.bars("BTCUSD", START, END)
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")


@pytest.fixture
def universe(small_universe) -> UniverseResource:
    """The universe resource over the small universe."""
    return UniverseResource(path=str(small_universe))


def _study_config(**overrides) -> dict:
    config = {"start": START, "end": END, "n_trials": 6, "seed": 3, "study_name": "t-study"}
    return {"ops": {"optimization_study": {"config": config | overrides}}}


def test_study_run_mirrors_study_and_trials(
    mongo_resource: MongoResource, universe: UniverseResource, mongo_db, crypto_bars
) -> None:
    key = dg.MultiPartitionKey({"strategy": "sma_crossover", "asset_class": "crypto"})
    resources = {"mongo": mongo_resource, "universe": universe}
    result = dg.materialize(
        [optimization_study], resources=resources, partition_key=key, run_config=_study_config()
    )
    assert result.success
    study = mongo_db.studies.find_one({"study_name": "t-study"})
    assert study["strategy"] == "sma_crossover" and study["asset_class"] == "crypto"
    assert study["symbols"] == ["BTCUSD"]
    assert study["run_id"] == result.run_id
    # The baseline is the strategy's defaults, and it is the study's first (enqueued) trial.
    defaults = get_strategy("sma_crossover").default_params()
    assert study["baseline"]["params"] == defaults
    first = mongo_db.trials.find_one({"study_name": "t-study", "number": 0})["params"]
    assert first == {"fast": defaults["fast"], "slow": defaults["slow"]}  # the searched ones
    assert study["progress"]["done"] == study["progress"]["total"] == 6
    assert mongo_db.trials.count_documents({"study_name": "t-study"}) == 6
    assert mongo_db.optuna_journal.count_documents({}) > 0
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["n_trials"].value == 6
    assert meta["trials_per_hour"].value > 0
    assert "improvement_over_baseline" in meta

    # The same study run again resumes by name: the budget is already spent.
    again = dg.materialize(
        [optimization_study], resources=resources, partition_key=key, run_config=_study_config()
    )
    assert again.success
    assert mongo_db.trials.count_documents({"study_name": "t-study"}) == 6

    board = dg.materialize(
        [optimization_leaderboard, promoted_rows_pass_overfitting_tests],
        resources={"mongo": mongo_resource, "mongo_io": MongoIOManager(mongo=mongo_resource)},
    )
    assert board.success
    bmeta = board.get_asset_materialization_events()[0].materialization.metadata
    table = bmeta["leaderboard_sharpe"].value
    columns = [c.name for c in table.schema.columns]
    for column in ("in_sample", "validation", "holdout", "holdout_sharpe", "buy_hold_sharpe"):
        assert column in columns
    for column in ("deflated_sharpe", "pbo", "spa_pvalue", "promoted", "reason", "params"):
        assert column in columns
    assert 1 <= len(table.records) <= 6
    ranked = [r.data["validation"] for r in table.records]
    assert ranked == sorted(ranked, reverse=True)  # ranked on validation, never the holdout
    assert all("=" in r.data["params"] for r in table.records)  # "fast=45, slow=269"
    assert bmeta["rank_by"].value.startswith("validation")
    assert mongo_db["io_optimization_leaderboard"].count_documents({}) == len(table.records)
    # The gate ran: the study's pick is recorded with the reason, and the check passed.
    promotion = mongo_db.studies.find_one({"study_name": "t-study"})["promotion"]
    assert promotion["trial"] == table.records[0].data.get("trial", promotion["trial"])
    assert promotion["reason"] and "observed" in promotion
    (check,) = board.get_asset_check_evaluations()
    assert check.check_name == "promoted_rows_pass_overfitting_tests" and check.passed
    assert check.metadata["thresholds"].value["min_dsr"] == 0.95


def test_the_gate_check_blocks_downstream_when_a_promotion_no_longer_passes(
    mongo_resource: MongoResource, mongo_db
) -> None:
    """A study resumed after its promotion tried more configurations: its DSR fell below the
    bar, so the blocking check fails and the KPI report does not run."""
    stats = {
        "pbo": {"pbo": 0.2},
        "spa": {"pvalue": 0.01},
        "deflated_sharpe": {"3": 0.99},
        "buy_hold_holdout_sharpe": 0.2,
    }
    mongo_db.studies.insert_one(
        {
            "study_name": "s",
            "strategy": "sma_crossover",
            "asset_class": "equity",
            "objective": "sharpe",
            "statistics": stats,
        }
    )
    mongo_db.trials.insert_one(
        {
            "study_name": "s",
            "number": 3,
            "state": "COMPLETE",
            "feasible": True,
            "params": {"fast": 5, "slow": 50},
            "value": 1.0,
            "validation": 1.0,
            "in_sample": 1.2,
            "holdout": 0.9,
            "oos_metrics": {"sharpe": 0.9},
            "is_metrics": {},
        }
    )
    resources = {"mongo": mongo_resource, "mongo_io": MongoIOManager(mongo=mongo_resource)}
    assets = [optimization_leaderboard, promoted_rows_pass_overfitting_tests, kpi_report]
    first = dg.materialize(assets, resources=resources)
    assert first.success
    assert mongo_db.studies.find_one({"study_name": "s"})["promotion"]["promoted"] is True
    # The study is resumed; with more configurations tried its DSR is now 0.41.
    mongo_db.studies.update_one(
        {"study_name": "s"}, {"$set": {"statistics.deflated_sharpe.3": 0.41}}
    )
    result = dg.materialize(
        assets,
        resources=resources,
        selection=dg.AssetSelection.checks(promoted_rows_pass_overfitting_tests)
        | dg.AssetSelection.assets(kpi_report),
        raise_on_error=False,
    )
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["failing"].value == 1
    (row,) = check.metadata["observed"].value
    assert row["observed"]["dsr"] == 0.41 and row["thresholds"]["min_dsr"] == 0.95
    assert "DSR 0.41 < 0.95" in row["reasons"]
    assert not result.success
    assert not [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["kpi_report"]
    ]


def test_leaderboard_config_refuses_unknown_rank_by(mongo_resource: MongoResource) -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="validation"):
        dg.materialize(
            [optimization_leaderboard],
            resources={"mongo": mongo_resource, "mongo_io": MongoIOManager(mongo=mongo_resource)},
            run_config={"ops": {"optimization_leaderboard": {"config": {"rank_by": "oos"}}}},
        )


def test_missing_bars_fail_clearly_without_retry(
    mongo_resource: MongoResource, universe: UniverseResource, mongo_db
) -> None:
    key = dg.MultiPartitionKey({"strategy": "sma_crossover", "asset_class": "crypto"})
    result = dg.materialize(
        [optimization_study],
        resources={"mongo": mongo_resource, "universe": universe},
        partition_key=key,
        run_config=_study_config(),
        raise_on_error=False,
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "no bars in MongoDB" in message and "market_bars/crypto" in message
    assert mongo_db.studies.count_documents({}) == 0


def _request(db: Database, *, urgent: bool = False) -> dict:
    params = {
        "strategy": "sma_crossover",
        "symbols": ["BTCUSD"],
        "start": START,
        "end": END,
        "n_trials": 5,
        "objective": "sharpe",
        "sampler": "tpe",
        "seed": 1,
        "walk_forward": {"n_folds": 2},
        "urgent": urgent,
    }
    return requests.create_request(db, params, extra={"asset_classes": ["crypto"]}).document


SATURDAY = pd.Timestamp("2024-03-09 15:00", tz="UTC")
TUESDAY_MIDDAY = pd.Timestamp("2024-03-05 17:00", tz="UTC")  # 12:00 New York, market open


def test_request_outside_market_hours_plans_one_keyed_run(mongo_db: Database) -> None:
    request = _request(mongo_db)
    planned = plan_request_runs(mongo_db, now=SATURDAY)
    assert len(planned) == 1
    run = planned[0]
    assert run.run_key == request["request_id"]
    assert run.partition_key == "crypto|sma_crossover"
    assert run.tags["dagster/priority"] == str(ASSET_CLASS_PRIORITY["crypto"])
    config = run.run_config["ops"]["optimization_study"]["config"]
    assert config["study_name"] == request["study_name"] and config["n_folds"] == 2
    launched = requests.get_request(mongo_db, request["request_id"])
    assert launched["status"] == "launched" and launched["run_key"] == request["request_id"]
    # Its run exists now: the next tick records the run id and plans nothing.
    again = plan_request_runs(mongo_db, now=SATURDAY, find_run=lambda key: f"run-of-{key}")
    assert again == []
    launched = requests.get_request(mongo_db, request["request_id"])
    assert launched["status"] == "launched"
    assert launched["run_id"] == f"run-of-{request['request_id']}"


def test_a_launched_request_whose_run_was_never_created_is_asked_for_again(
    mongo_db: Database,
) -> None:
    request = _request(mongo_db)
    (first,) = plan_request_runs(mongo_db, now=SATURDAY)
    (again,) = plan_request_runs(mongo_db, now=SATURDAY)  # the tick's run was not created
    assert again.run_key == first.run_key == request["request_id"]
    assert requests.get_request(mongo_db, request["request_id"])["status"] == "launched"


def test_market_hours_defer_unless_urgent(mongo_db: Database) -> None:
    calm = _request(mongo_db)
    urgent = _request(mongo_db, urgent=True)
    planned = plan_request_runs(mongo_db, now=TUESDAY_MIDDAY)
    assert [r.run_key for r in planned] == [urgent["request_id"]]
    deferred = requests.get_request(mongo_db, calm["request_id"])
    assert deferred["status"] == "deferred"
    until = pd.Timestamp(deferred["deferred_until"])
    assert until == pd.Timestamp("2024-03-05 21:00", tz="UTC")  # the 16:00 New York close
    # Due again after the close.
    later = plan_request_runs(
        mongo_db,
        now=pd.Timestamp("2024-03-05 22:00", tz="UTC"),
        find_run=lambda key: "run-1" if key == urgent["request_id"] else None,
    )
    assert [r.run_key for r in later] == [calm["request_id"]]


def test_sensor_twice_over_one_request_launches_one_run(
    mongo_resource: MongoResource, universe: UniverseResource, mongo_db, crypto_bars
) -> None:
    """The request sensor launches one run; the run-status sensor, not the asset, ends the
    request; the study's progress (one vocabulary) is what the request's readers see."""
    request = _request(mongo_db, urgent=True)
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(
            instance=instance, resources={"mongo": mongo_resource}
        ) as context:
            first = optimization_request_sensor(context)
        assert [r.run_key for r in first] == [request["request_id"]]
        assert requests.get_request(mongo_db, request["request_id"])["status"] == "launched"
        run = first[0]
        result = dg.materialize(
            [optimization_study],
            instance=instance,
            run_config=run.run_config,
            partition_key=run.partition_key,
            tags=run.tags,
            resources={"mongo": mongo_resource, "universe": universe},
        )
        assert result.success
        # The asset body leaves the request alone.
        assert requests.get_request(mongo_db, request["request_id"])["status"] == "launched"
        with dg.build_sensor_context(
            instance=instance, resources={"mongo": mongo_resource}
        ) as context:
            second = optimization_request_sensor(context)
        assert isinstance(second, dg.SkipReason)
        runs = instance.get_run_records(
            filters=dg.RunsFilter(tags={REQUEST_TAG: request["request_id"]})
        )
        assert len(runs) == 1
        # The second tick found the run and recorded its id.
        assert requests.get_request(mongo_db, request["request_id"])["run_id"] == result.run_id
        evaluate_run_sensor(instance, result.run_id, mongo_resource, dg.DagsterEventType.RUN_START)
        assert requests.get_request(mongo_db, request["request_id"])["status"] == "running"
        evaluate_run_sensor(instance, result.run_id, mongo_resource)
    done = requests.get_request(mongo_db, request["request_id"])
    assert done["status"] == "succeeded" and done["run_id"] == result.run_id
    assert [h["status"] for h in done["history"]] == ["queued", "launched", "running", "succeeded"]
    progress = mongo_db.studies.find_one({"study_name": request["study_name"]})["progress"]
    assert progress["done"] == 5 and progress["total"] == 5 and progress["eta_s"] == 0
    assert progress["best_params"]


def test_request_run_config_carries_the_request() -> None:
    request = {
        "request_id": "r1",
        "study_name": "s1",
        "params": {
            "strategy": "rsi_mean_reversion",
            "symbols": ["AAPL"],
            "start": "2024-01-01",
            "end": "2024-06-01",
            "n_trials": 9,
            "objective": "sortino",
            "sampler": "random",
            "seed": 4,
            "walk_forward": False,
        },
    }
    config = request_run_config(request)["ops"]["optimization_study"]["config"]
    assert config["request_id"] == "r1" and config["objective"] == "sortino"
    assert config["validation"] == "none"  # walk_forward: false means no folds


def test_every_walk_forward_option_reaches_the_run() -> None:
    params = {
        "strategy": "sma_crossover",
        "symbols": ["AAPL"],
        "start": "2024-01-01",
        "end": "2024-06-01",
        "n_trials": 9,
        "objective": "sharpe",
        "sampler": "tpe",
        "seed": 4,
        "walk_forward": {"n_folds": 5, "scheme": "rolling", "train_frac": 0.4, "purge": 3},
        "validation": "walk_forward",
    }
    config = request_run_config({"request_id": "r", "study_name": "s", "params": params})
    config = config["ops"]["optimization_study"]["config"]
    assert config["validation"] == "walk_forward"
    assert (config["n_folds"], config["scheme"], config["train_frac"], config["purge"]) == (
        5,
        "rolling",
        0.4,
        3,
    )
    cpcv = {**params, "validation": "cpcv", "cpcv": {"n_groups": 8, "embargo": 2}}
    config = request_run_config({"request_id": "r", "study_name": "s", "params": cpcv})
    config = config["ops"]["optimization_study"]["config"]
    assert (config["validation"], config["n_groups"], config["embargo"]) == ("cpcv", 8, 2)


def test_two_parallel_workers_share_one_cpcv_study_without_duplicates(
    mongo_env: Database, tmp_path, monkeypatch: pytest.MonkeyPatch, crypto_bars
) -> None:
    """Two worker processes (multiprocess executor) on one CPCV study of the last 600 bars:
    every trial number once, none lost, each scored on the 3 CPCV paths."""
    import shutil
    from pathlib import Path

    from quant_pipelines.bench.scaleout import run_parallel_study

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml", home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = {
        "symbols": ["BTCUSD"],
        "asset_class": "crypto",
        "validation": "cpcv",
        "n_groups": 4,
        "n_test_groups": 2,  # C(4, 2) = 6 splits, 2 * 6 / 4 = 3 paths
        "pruner": "none",
        "max_bars": 600,
    }
    with dg.DagsterInstance.get() as instance:
        out = run_parallel_study(
            instance, study_name="shared", workers=2, n_trials=12, config=config
        )
    assert out["workers"] == 2 and out["cpu_seconds"] > 0
    trials = list(mongo_env.trials.find({"study_name": "shared"}))
    numbers = sorted(t["number"] for t in trials)
    assert numbers == list(range(len(numbers))) and len(numbers) >= 12
    assert out["trials_run"] == len(numbers)
    assert {t["state"] for t in trials} == {"COMPLETE"}
    assert all(len(t["scores"]["paths"]) == 3 for t in trials)
    study = mongo_env.studies.find_one({"study_name": "shared"})
    assert (study["validation"]["method"], study["validation"]["n_groups"]) == ("cpcv", 4)
    assert study["pruner"] == "none"
    first = pd.Timestamp(SyntheticSource(seed=5).bars("BTCUSD", START, END).index[-600])
    start = pd.Timestamp(study["in_sample"][0]["start"])
    assert (start if start.tzinfo else start.tz_localize("UTC")) == first


def _parallel_config(**fields) -> dict:
    return {"study_name": "p", "symbols": ["BTCUSD"], "start": START, "end": END} | fields


def test_parallel_study_defaults_are_the_former_worker_arguments() -> None:
    from quant_pipelines.defs.optimization.parallel import ParallelStudyConfig
    from quant_pipelines.optimizer import Validation

    kwargs = ParallelStudyConfig(**_parallel_config()).worker_kwargs()
    assert kwargs["validation"] == Validation()  # walk-forward, 3 folds
    assert (kwargs["objective"], kwargs["pruner"], kwargs["oos_fraction"]) == (
        "sharpe",
        "median",
        0.3,
    )
    assert (kwargs["max_bars"], kwargs["periods_per_year"], kwargs["wall_limit"]) == (
        0,
        None,
        7200.0,
    )


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"workers": 0}, "workers must be >= 1"),
        ({"n_trials": 0}, "n_trials must be >= 1"),
        ({"max_bars": -5}, "max_bars must be >= 0"),
        ({"n_folds": 0}, "n_folds must be >= 1"),
        ({"validation": "cpcv", "n_groups": 1}, "n_groups must be >= 2"),
        ({"validation": "cpcv", "n_groups": 4, "n_test_groups": 4}, "n_test_groups"),
        ({"oos_fraction": 1.0}, "oos_fraction"),
        ({"objective": "alpha"}, "objective 'alpha' is unknown"),
        ({"strategy": "nope"}, "strategy: "),
    ],
    ids=[
        "workers",
        "n_trials",
        "max_bars",
        "n_folds",
        "n_groups",
        "n_test_groups",
        "oos_fraction",
        "objective",
        "strategy",
    ],
)
def test_a_bad_parallel_study_config_fails_naming_the_field(fields: dict, named: str) -> None:
    from quant_pipelines.defs.optimization.parallel import ParallelStudyConfig

    with pytest.raises(ValueError, match=f"parallel_study_job config 'p': {named}"):
        ParallelStudyConfig(**_parallel_config(**fields)).check()


def test_a_bad_parallel_study_config_fails_the_run_before_any_worker(mongo_env: Database) -> None:
    from quant_pipelines.definitions import parallel_study_job_def

    job = parallel_study_job_def()
    config = _parallel_config(validation="cpcv", n_groups=1)
    ops = {name: {"config": config} for name in ("study_workers", "study_worker")}
    result = job.execute_in_process(run_config={"ops": ops}, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("study_workers")
    assert "n_groups must be >= 2, got 1" in failure.user_failure_data.description
    assert not result.get_step_success_events()
    assert mongo_env.trials.count_documents({}) == 0
    with pytest.raises(dg.DagsterInvalidConfigError, match="kfold"):
        job.execute_in_process(
            run_config={"ops": {n: {"config": _parallel_config(validation="kfold")} for n in ops}}
        )


def test_a_run_stops_at_its_wall_clock_limit_and_a_later_run_finishes_the_study(
    mongo_resource: MongoResource, universe: UniverseResource, mongo_db, crypto_bars
) -> None:
    """Item 2b: a 1 s limit ends the first run cleanly with part of the budget done; the
    request goes back to the queue (not failed) and the next run finishes the same study.
    The transition is the run-status sensor's, read from the run's ``stopped_at_wall_limit``."""
    import optuna

    from quant_pipelines.storage import optuna_storage

    n_trials = 150  # ~40 trials/s here: far more than a 1 s run can do
    params = {
        "strategy": "sma_crossover",
        "symbols": ["BTCUSD"],
        "start": START,
        "end": END,
        "n_trials": n_trials,
        "objective": "sharpe",
        "sampler": "tpe",
        "seed": 1,
        "walk_forward": False,  # no validation steps, so no pruning: done == complete
        "urgent": True,  # plannable whatever the real clock's market hours
    }
    request = requests.create_request(
        mongo_db, params, extra={"asset_classes": ["crypto"]}
    ).document
    request_id, study_name = request["request_id"], request["study_name"]
    resources = {"mongo": mongo_resource, "universe": universe}
    instance = dg.DagsterInstance.ephemeral()

    def launch(run: dg.RunRequest, **overrides) -> dg.ExecuteInProcessResult:
        config = run.run_config["ops"]["optimization_study"]["config"] | overrides
        result = dg.materialize(
            [optimization_study],
            resources=resources,
            partition_key=run.partition_key,
            run_config={"ops": {"optimization_study": {"config": config}}},
            tags=run.tags,
            instance=instance,
        )
        evaluate_run_sensor(instance, result.run_id, mongo_resource)
        return result

    def trial_states() -> list[str]:
        storage = optuna_storage(mongo_db, heartbeat_interval=None)
        study = optuna.load_study(study_name=study_name, storage=storage)
        return [t.state.name for t in study.get_trials(deepcopy=False)]

    (first,) = plan_request_runs(mongo_db, now=pd.Timestamp.now(tz="UTC"))
    assert first.run_key == request_id
    result = launch(first, max_wall_seconds=1)
    assert result.success  # the run ended cleanly
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["stopped_at_wall_limit"].value is True
    assert meta["status"].value == "incomplete"
    states = trial_states()
    done_first = states.count("COMPLETE")
    assert 0 < done_first < n_trials, done_first
    assert "RUNNING" not in states  # the trial running at the limit was finished
    after_first = requests.get_request(mongo_db, request_id)
    assert after_first["status"] == "deferred"  # back in the queue, not failed
    assert after_first["run_id"] is None and after_first["resumes"] == 1
    progress = mongo_db.studies.find_one({"study_name": study_name})["progress"]
    assert progress["done"] == done_first and progress["total"] == n_trials
    assert "wall-clock limit" in after_first["history"][-1]["note"]
    assert mongo_db.studies.find_one({"study_name": study_name})["status"] == "incomplete"

    # The sensor plans a resuming run under a new run key, even though the first run exists.
    (second,) = plan_request_runs(
        mongo_db,
        now=pd.Timestamp.now(tz="UTC"),
        find_run=lambda key: "run-1" if key == request_id else None,
    )
    assert second.run_key == f"{request_id}:resume-1"
    assert second.tags[REQUEST_TAG] == request_id
    result = launch(second)  # the default limit (2 h) is ample
    assert result.success
    states = trial_states()
    assert states.count("COMPLETE") == n_trials and len(states) == n_trials
    done = requests.get_request(mongo_db, request_id)
    assert done["status"] == "succeeded" and done["run_id"] == result.run_id
    study = mongo_db.studies.find_one({"study_name": study_name})
    assert study["progress"]["done"] == n_trials and study["status"] == "completed"
    assert mongo_db.trials.count_documents({"study_name": study_name}) == n_trials
    assert plan_request_runs(mongo_db, now=pd.Timestamp.now(tz="UTC")) == []


def test_the_leaderboard_runs_after_each_new_study_materialization() -> None:
    """Declarative automation: a study partition materialized → one leaderboard run, even
    though most (strategy, asset class) partitions were never materialized (``eager()``
    would wait for them forever)."""
    assets = dg.Definitions(
        assets=[optimization_study, optimization_leaderboard],
        resources={
            "mongo": MongoResource(uri="mongodb://127.0.0.1:1", database="unused"),
            "mongo_io": dg.mem_io_manager,
            "universe": UniverseResource(),
        },
    )
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=assets, instance=instance)
        assert first.total_requested == 0  # no study yet
        instance.report_runless_asset_event(
            dg.AssetMaterialization("optimization_study", partition="crypto|sma_crossover")
        )
        second = dg.evaluate_automation_conditions(
            defs=assets, instance=instance, cursor=first.cursor
        )
        assert second.total_requested == 1
        assert second.get_num_requested(optimization_leaderboard.key) == 1
        third = dg.evaluate_automation_conditions(
            defs=assets, instance=instance, cursor=second.cursor
        )
        assert third.total_requested == 0  # handled: no second run for the same update
