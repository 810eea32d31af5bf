"""The documented severity mapping and versioned thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.quality import RULES, SEVERITIES, Thresholds
from quant_pipelines.quality.severity import (
    combine_levels,
    jump_level,
    level_names,
    rule_level,
    rule_name_levels,
    severity_rank,
    statistical_level,
)

T = Thresholds(
    iforest_warning=0.6,
    prophet_price_warning=1.0,
    prophet_volume_warning=0.5,
    iforest_critical=0.7,
    prophet_price_critical=2.0,
    prophet_volume_critical=1.0,
)


@pytest.mark.parametrize(
    ("iforest", "price", "volume", "expected"),
    [
        (0.50, 0.0, 0.0, 0),  # all below warning
        (0.65, 0.0, 0.0, 1),  # one detector: warning
        (0.50, 1.5, 0.0, 1),
        (0.50, 0.0, 0.6, 1),
        (0.95, 0.5, 0.2, 1),  # the forest far beyond, Prophet quiet: still warning
        (0.50, 9.0, 9.0, 1),  # Prophet far beyond, the forest quiet: still warning
        (0.65, 1.5, 0.7, 1),  # both beyond warning, not far beyond
        (0.70, 2.0, 0.0, 2),  # both far beyond: critical
        (0.70, 0.0, 1.0, 2),
    ],
)
def test_statistical_mapping(iforest: float, price: float, volume: float, expected: int) -> None:
    level = statistical_level(np.array([iforest]), np.array([price]), np.array([volume]), T)
    assert level[0] == expected


def test_warmup_has_no_statistical_level() -> None:
    one = np.array([9.0])
    assert statistical_level(one, one, one, T, warmup=np.array([True]))[0] == 0


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("non_positive_price", 2),
        ("non_finite_value", 2),
        ("inconsistent_ohlc", 2),
        ("negative_volume", 2),
        ("duplicate_bar", 2),
        ("price_jump", 0),  # critical through jump_level, which a market event may clear
        ("stale_price", 1),
        ("missing_bars", 1),
        ("zero_volume", 1),
    ],
)
def test_rule_mapping(rule: str, expected: int) -> None:
    flags = pd.DataFrame({name: [name == rule] for name in RULES})
    assert rule_level(flags)[0] == expected
    assert jump_level(flags)[0] == (2 if rule == "price_jump" else 0)
    fixed, jump = rule_name_levels([[rule]])
    assert (fixed[0], jump[0]) == (expected, jump_level(flags)[0])


def test_market_event_clears_statistics_and_jumps_not_rules() -> None:
    rule = np.array([2, 0, 0, 1, 0])
    stat = np.array([2, 2, 1, 2, 0])
    jump = np.array([0, 0, 0, 0, 2])
    event = np.array([True, True, True, True, True])
    assert combine_levels(rule, stat, market_event=event, jump=jump).tolist() == [2, 0, 0, 1, 0]
    assert combine_levels(rule, stat, jump=jump).tolist() == [2, 2, 1, 2, 2]
    assert combine_levels(rule, stat, market_event=~event).tolist() == [2, 2, 1, 2, 0]


def test_names_round_trip() -> None:
    names = level_names(np.array([0, 1, 2]))
    assert names.tolist() == list(SEVERITIES)
    assert severity_rank(names).tolist() == [0, 1, 2]


def test_thresholds_round_trip_and_version() -> None:
    doc = {**T.to_dict(), "_id": "ignored"}
    assert Thresholds.from_dict(doc) == T
    a, b = T.with_version("20240105"), T.with_version("20240105")
    assert a.version == b.version and a.version.startswith("20240105-")
    other = Thresholds(**{**T.to_dict(), "prophet_price_critical": 2.5})
    assert other.with_version("20240105").version != a.version


def test_critical_below_warning_is_rejected() -> None:
    with pytest.raises(ValueError, match="prophet_volume_critical"):
        Thresholds(**{**T.to_dict(), "prophet_volume_critical": 0.1})
