"""run_study: budget, resume, baseline, pruning, constraints, mirrors, engines (in memory)."""

from __future__ import annotations

import optuna
import pytest

from quant_pipelines.backtest import get_strategy
from quant_pipelines.optimizer import (
    HYPEROPT_ALGOS,
    SAMPLERS,
    Evaluator,
    prepare,
    run_study,
)


def _params(storage: optuna.storages.BaseStorage, name: str) -> list[dict]:
    return [t.params for t in optuna.load_study(study_name=name, storage=storage).trials]


def test_summary_reports_best_baseline_and_improvement(bars) -> None:
    s = run_study(bars, strategy="sma_crossover", study_name="s", n_trials=20, seed=3)
    base = Evaluator(get_strategy("sma_crossover"), prepare(bars)).evaluate({})
    assert (s.status, s.n_trials, s.trials_run, s.engine) == ("completed", 20, 20, "optuna")
    assert s.n_complete + s.n_pruned == 20
    assert s.baseline_params == {"fast": 10, "slow": 50, "allow_short": False}
    assert s.baseline_value == pytest.approx(base.values[0])
    assert s.best_params["fast"] < s.best_params["slow"]
    assert s.improvement == pytest.approx(s.best_value - s.baseline_value)
    assert s.trials_per_hour > 0
    assert 0.0 <= s.best_deflated_sharpe <= 1.0
    assert s.to_dict()["best_params"] == s.best_params


@pytest.mark.slow
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_is_seeded(bars, sampler: str) -> None:
    n = 12 if sampler == "gp" else 15
    runs = []
    for _ in range(2):
        storage = optuna.storages.InMemoryStorage()
        run_study(
            bars, strategy="sma_crossover", study_name="x", n_trials=n, sampler=sampler,
            seed=11, storage=storage, pruner="none",
        )  # fmt: skip
        runs.append(_params(storage, "x"))
    assert runs[0] == runs[1]
    assert len({tuple(p.values()) for p in runs[0]}) > 1


@pytest.mark.parametrize("algo", HYPEROPT_ALGOS)
def test_hyperopt_engine_is_seeded_and_mirrored(bars, recorder, algo: str) -> None:
    kw = {"strategy": "sma_crossover", "study_name": "h", "n_trials": 12, "seed": 5}
    a = run_study(bars, engine="hyperopt", sampler=algo, recorder=recorder, **kw)
    b = run_study(bars, engine="hyperopt", sampler=algo, **kw)
    assert (a.best_params, a.best_value) == (b.best_params, b.best_value)
    assert a.engine == "hyperopt" and a.n_trials == 12
    docs = [d for (name, _), d in recorder.trials.items() if name == "h"]
    assert len(docs) == 12 and all(d["engine"] == "hyperopt" for d in docs)
    assert all(isinstance(d["params"]["fast"], int) for d in docs)
    assert recorder.studies["h"]["status"] == "completed"
    assert recorder.studies["h"]["sampler"] == algo


def test_resume_by_name_runs_only_the_rest_of_the_budget(bars) -> None:
    storage = optuna.storages.InMemoryStorage()
    kw = {"strategy": "sma_crossover", "study_name": "r", "storage": storage, "seed": 1}
    first = run_study(bars, n_trials=8, **kw)
    second = run_study(bars, n_trials=13, **kw)
    third = run_study(bars, n_trials=13, **kw)
    assert (first.trials_run, second.trials_run, third.trials_run) == (8, 5, 0)
    assert second.n_trials == third.n_trials == 13
    assert third.best_value == second.best_value
    with pytest.raises(ValueError, match="exists for"):
        run_study(bars, strategy="momentum", study_name="r", storage=storage, n_trials=20)


def test_walk_forward_steps_drive_pruning(bars) -> None:
    storage = optuna.storages.InMemoryStorage()
    s = run_study(
        bars, strategy="sma_crossover", study_name="p", n_trials=40, seed=0, n_folds=4,
        storage=storage,
    )  # fmt: skip
    assert s.n_pruned > 0
    trials = optuna.load_study(study_name="p", storage=storage).trials
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(max(t.intermediate_values) < 3 for t in pruned)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(sorted(t.intermediate_values) == [0, 1, 2] for t in done)
    off = run_study(bars, strategy="sma_crossover", study_name="q", n_trials=20, pruner="none")
    assert off.n_pruned == 0


def test_constraints_go_through_set_constraint(bars, recorder) -> None:
    storage = optuna.storages.InMemoryStorage()
    s = run_study(
        bars, strategy="sma_crossover", study_name="c", n_trials=10, min_trades=10**6,
        storage=storage, recorder=recorder, pruner="none",
    )  # fmt: skip
    assert s.best_params is None and s.improvement is None
    trial = optuna.load_study(study_name="c", storage=storage).trials[0]
    assert set(trial.constraints) == {"fast < slow", "min_trades"}
    assert trial.constraints["min_trades"] > 0
    assert not any(d["feasible"] for d in recorder.trials.values())


def test_multi_objective_sharpe_against_drawdown(bars) -> None:
    s = run_study(
        bars, strategy="sma_crossover", study_name="m", n_trials=12, objective="sharpe_drawdown",
        sampler="nsga2",
    )  # fmt: skip
    assert len(s.best_values) == 2 and s.best_values[1] <= 0.0
    assert s.n_pruned == 0
    with pytest.raises(ValueError, match="single-objective"):
        run_study(
            bars, strategy="sma_crossover", study_name="m2", n_trials=2,
            objective="sharpe_drawdown", sampler="cmaes",
        )  # fmt: skip


def test_regime_robust_objective_and_several_symbols(crypto_bars) -> None:
    s = run_study(
        crypto_bars, strategy="momentum", study_name="rr", n_trials=8, objective="regime_robust",
        asset_class="crypto",
    )  # fmt: skip
    assert s.n_trials == 8 and s.objective == "regime_robust"


def test_progress_callback_and_mirrors_after_every_trial(bars, recorder) -> None:
    seen: list[dict] = []
    s = run_study(
        bars, strategy="sma_crossover", study_name="g", n_trials=10, recorder=recorder,
        on_progress=seen.append, metadata={"partition": "equity|2024-01-02", "run_id": "abc"},
    )  # fmt: skip
    assert [p["done"] for p in seen] == list(range(1, 11))
    assert seen[-1]["eta_s"] == 0
    study = recorder.studies["g"]
    assert study["status"] == "completed" and study["partition"] == "equity|2024-01-02"
    assert study["baseline"]["params"]["fast"] == 10
    assert study["progress"]["done"] == 10
    assert study["best"]["number"] == s.best_number
    assert study["summary"]["improvement"] == s.improvement
    assert study["space"]["params"][0]["name"] == "fast"
    docs = sorted((d for d in recorder.trials.values()), key=lambda d: d["number"])
    assert [d["number"] for d in docs] == list(range(10))
    best = docs[s.best_number]
    assert best["value"] == s.best_value and best["strategy"] == "sma_crossover"
    assert {"sharpe", "max_drawdown", "n_trades"} <= set(best["is_metrics"])
    assert "sharpe" in best["oos_metrics"] and 0.0 <= best["deflated_sharpe"] <= 1.0


def test_timeout_stops_the_run(bars) -> None:
    s = run_study(bars, strategy="sma_crossover", study_name="t", n_trials=10**6, timeout=1.0)
    assert s.status == "incomplete" and 0 < s.trials_run < 10**6
    assert s.elapsed_seconds < 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "ray"}, "engine"),
        ({"objective": "alpha"}, "objective"),
        ({"sampler": "grid"}, "sampler"),
        ({"engine": "hyperopt", "sampler": "cmaes"}, "sampler"),
        ({"pruner": "hyperband"}, "pruner"),
        ({"n_trials": 0}, "n_trials"),
        ({"strategy": "nope"}, "unknown strategy"),
    ],
)
def test_bad_arguments_are_refused(bars, kwargs: dict, match: str) -> None:
    args = {"strategy": "sma_crossover", "study_name": "bad", "n_trials": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_study(bars, **args)
