"""One definition of the calendar rules: the engine's schedule and the strategies' dates agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest.portfolio._xs_panel import rebalance_mask
from quant_pipelines.backtest.portfolio.rebalance import calendar_mask, rebalance_plan


@pytest.mark.parametrize("rule", ["daily", "weekly", "monthly"])
def test_engine_schedule_and_strategy_dates_are_the_same_mask(rule: str) -> None:
    rng = np.random.default_rng(0)
    days = np.sort(rng.choice(400, size=150, replace=False))
    index = pd.DatetimeIndex(
        pd.Timestamp("2021-03-01", tz="America/New_York") + pd.to_timedelta(days, "D")
    )
    _, decide, _ = rebalance_plan(index, rule)
    mask = rebalance_mask(index, rule)
    np.testing.assert_array_equal(decide, mask)
    np.testing.assert_array_equal(mask, calendar_mask(index, rule))
    assert mask[0] and (rule != "daily" or mask.all())


def test_calendar_mask_rejects_other_rules() -> None:
    index = pd.date_range("2021-01-01", periods=3, tz="UTC")
    with pytest.raises(ValueError, match="quarterly"):
        calendar_mask(index, "quarterly")
    with pytest.raises(ValueError, match="DatetimeIndex"):
        calendar_mask(pd.RangeIndex(3), "weekly")
