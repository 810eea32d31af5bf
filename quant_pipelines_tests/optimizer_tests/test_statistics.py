"""study_statistics on bad input: None with the reason, never a crash, never a promotion."""

from __future__ import annotations

from quant_pipelines.backtest import get_strategy
from quant_pipelines.optimizer import (
    Evaluator,
    TrialRecord,
    prepare,
    rank_leaderboard,
    study_statistics,
)


def _record(ev: Evaluator, number: int, params: dict) -> TrialRecord:
    e = ev.evaluate(params)
    return TrialRecord(
        number,
        "COMPLETE",
        dict(e.params),
        values=list(e.values),
        is_metrics=e.is_metrics,
        oos_metrics=e.oos_metrics,
        scores=e.scores(),
    )


def test_one_trial_gives_no_pbo_or_spa_with_the_reason(bars) -> None:
    ev = Evaluator(get_strategy("sma_crossover"), prepare(bars))
    stats = study_statistics(ev, [_record(ev, 0, {"fast": 5, "slow": 30})])
    assert stats.n_trials_tried == 1 and stats.pbo is None and stats.spa is None
    assert "at least 2" in stats.pbo_reason and "at least 2" in stats.spa_reason
    assert stats.deflated_sharpe[0] is not None  # with N = 1 the DSR is the PSR
    study = {"study_name": "s", "objective": "sharpe", "statistics": stats.to_dict()}
    trial = {
        "study_name": "s",
        "number": 0,
        "state": "COMPLETE",
        "feasible": True,
        "params": {"fast": 5, "slow": 30},
        "validation": 1.0,
        "oos_metrics": {"sharpe": 9.0},
    }
    (row,) = rank_leaderboard([study], [trial])
    assert not row["promoted"] and "PBO unavailable" in row["reason"]


def test_an_in_sample_period_too_short_for_the_blocks_is_a_reason(bars) -> None:
    short = bars.iloc[:40]  # 28 in-sample bars: 27 returns, fewer than 2 per block
    ev = Evaluator(get_strategy("sma_crossover"), prepare(short, n_folds=2))
    records = [_record(ev, i, {"fast": 2 + i, "slow": 10 + 3 * i}) for i in range(4)]
    stats = study_statistics(ev, records, n_blocks=16)
    assert stats.pbo is None and "block" in stats.pbo_reason
    assert stats.spa is not None  # the bootstrap still runs on 27 returns
    assert stats.to_dict()["deflated_sharpe"].keys() == {"0", "1", "2", "3"}


def test_statistics_are_seeded(bars) -> None:
    ev = Evaluator(get_strategy("sma_crossover"), prepare(bars))
    records = [_record(ev, i, {"fast": 2 + 3 * i, "slow": 20 + 9 * i}) for i in range(8)]
    a = study_statistics(ev, records, seed=3, spa_reps=200)
    b = study_statistics(ev, records, seed=3, spa_reps=200)
    assert a.spa == b.spa and a.pbo == b.pbo and a.deflated_sharpe == b.deflated_sharpe
