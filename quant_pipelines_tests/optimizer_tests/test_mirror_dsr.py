"""The mirrors' running deflated Sharpe ratio equals ``progress.deflated_sharpe`` exactly."""

from __future__ import annotations

from quant_pipelines.optimizer._mirror import Mirror
from quant_pipelines.optimizer.progress import TrialRecord, deflated_sharpe


def _complete(number: int, sharpe: float, params: dict) -> TrialRecord:
    metrics = {"sharpe": sharpe, "n_obs": 500.0, "skew": -0.2, "kurtosis": 4.0}
    return TrialRecord(number, "COMPLETE", params, [sharpe], is_metrics=metrics)


def test_running_dsr_matches_the_population_formula_as_trials_finish() -> None:
    mirror = Mirror("s", None, {})
    records: list[TrialRecord] = [
        _complete(0, 1.1, {"fast": 5, "slow": 50}),
        TrialRecord(1, "PRUNED", {"fast": 7, "slow": 40}, partial={"sharpe": 0.3, "n_obs": 90.0}),
        TrialRecord(2, "FAIL", {"fast": 9, "slow": 30}),
        _complete(3, 0.4, {"fast": 5, "slow": 50}),  # a repeated configuration
        TrialRecord(4, "RUNNING", {"fast": 11, "slow": 60}),
    ]
    for record in records:
        assert mirror.running_dsr(record, records) == deflated_sharpe(record, records)
    assert mirror.running_dsr(records[0], records) is not None
    # Trial 4 finishes (a new record object): N and the variance change, and so does the DSR.
    before = mirror.running_dsr(records[0], records)
    records[4] = _complete(4, 2.5, {"fast": 11, "slow": 60})
    records.append(_complete(5, -0.7, {"fast": 13, "slow": 70}))
    for record in records:
        assert mirror.running_dsr(record, records) == deflated_sharpe(record, records)
    assert mirror.running_dsr(records[0], records) != before
