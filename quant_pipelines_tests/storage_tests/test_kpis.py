"""The section-7 KPI "best Sharpe improvement over the baseline" is measured on the holdout."""

from __future__ import annotations

from pymongo.database import Database

from quant_pipelines.storage.kpis import section7_metrics
from quant_pipelines.storage.studies import record_promotions, upsert_study, upsert_trials


def _study(db: Database, name: str, *, hold: float, base_hold: float, best_is: float) -> None:
    upsert_study(
        db,
        name,
        {
            "strategy": "sma_crossover",
            "asset_class": "equity",
            "objective": "sharpe",
            "baseline": {
                "values": [0.5],
                "scores": {"in_sample": [0.5]},
                "oos_metrics": {"sharpe": base_hold},
            },
            "best": {"value": best_is},
        },
    )
    upsert_trials(
        db,
        name,
        [
            {
                "number": 1,
                "state": "COMPLETE",
                "feasible": True,
                "params": {"fast": 5},
                "value": best_is,
                "in_sample": best_is,
                "oos_metrics": {"sharpe": hold},
            }
        ],
    )


def test_improvement_is_on_the_holdout_of_promoted_trials_only(mongo_db: Database) -> None:
    _study(mongo_db, "a", hold=0.9, base_hold=0.6, best_is=2.5)
    _study(mongo_db, "b", hold=1.4, base_hold=0.2, best_is=3.0)
    before = section7_metrics(mongo_db)
    assert before["best_sharpe_improvement"] is None  # none promoted
    assert before["promoted_strategies"] == 0
    assert before["best_sharpe_improvement_in_sample"] == 2.5  # labelled in sample, inflated
    record_promotions(
        mongo_db,
        [
            {"study": "a", "trial": 1, "promoted": True, "reason": "passes every test"},
            {"study": "b", "trial": 1, "promoted": False, "reason": "DSR 0.41 < 0.95"},
        ],
    )
    after = section7_metrics(mongo_db)
    assert after["best_sharpe_improvement"] == 0.9 - 0.6  # b's bigger gain was not promoted
    assert after["promoted_strategies"] == 1
