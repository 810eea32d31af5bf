"""Causal and batch-independent: the same bars give the same scores however they are batched.

Models are fitted on a schedule (one set per week, on the bars before the week), so a bar is
scored by its week's models whatever the batch; Prophet is fitted once per week here and the
fitted schedule is reused by every batching.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_pipelines.quality import (
    ModelSchedule,
    check_rules,
    fit_schedule,
    score_bars,
    walk_forward_scores,
)

N_SCORED = 30
SCORED_FROM = 150


@pytest.fixture(scope="module")
def dirty(source) -> pd.DataFrame:
    """About 180 XNYS bars with a stale run, a x10 bar, zero volume, a dropped session, a
    duplicate row, a volume burst and a spike among the scored bars."""
    bars = source.bars("MSFT", "2023-01-01", "2023-09-30").iloc[: SCORED_FROM + N_SCORED].copy()
    t = SCORED_FROM
    bars.iloc[t + 2 : t + 9, :4] = bars["close"].iloc[t + 1]  # 8 identical closes
    bars.iloc[t + 11, :4] *= 10.0
    bars.iloc[t + 14, 4] = 0.0
    bars.iloc[t + 17, 4] *= 25.0
    bars.iloc[t + 20, 3] *= 1.15
    bars.iloc[t + 20, 1] = bars.iloc[t + 20, [0, 1, 3]].max()
    bars = bars.drop(bars.index[t + 23])
    return pd.concat([bars.iloc[: t + 25], bars.iloc[[t + 24]], bars.iloc[t + 25 :]])


@pytest.fixture(scope="module")
def schedule(dirty: pd.DataFrame) -> ModelSchedule:
    return fit_schedule(dirty, start=dirty.index[SCORED_FROM], calendar="XNYS", seed=3)


@pytest.fixture(scope="module")
def one_batch(dirty: pd.DataFrame, schedule: ModelSchedule) -> pd.DataFrame:
    return _score(dirty, schedule, [SCORED_FROM, len(dirty)])


def _score(bars: pd.DataFrame, schedule: ModelSchedule, cuts: list[int]) -> pd.DataFrame:
    """Score timestamps ``cuts[0]:cuts[-1]`` in batches cut at ``cuts`` (a batch takes every
    row of its timestamps, duplicates included)."""
    stamps = bars.index.unique()
    parts = []
    for lo, hi in itertools.pairwise(cuts):
        if lo < hi:
            batch = bars[bars.index.isin(stamps[lo:hi])]
            history = bars[bars.index < stamps[lo]]
            parts.append(
                score_bars(batch, history=history, models=schedule, calendar="XNYS", seed=3)
            )
    return pd.concat(parts)


@pytest.mark.slow
def test_the_fixture_is_not_trivial(one_batch: pd.DataFrame) -> None:
    assert not one_batch["warmup"].any()
    kinds = set(one_batch["kind"])
    assert {
        "stale_price",
        "possible_split",
        "zero_volume",
        "missing_bars",
        "duplicate_bar",
    } <= kinds
    assert (one_batch["prophet"] > 0).any()
    assert (one_batch["severity"] == "warning").sum() >= 4
    feed = one_batch[one_batch["kind"].isin(["stale_price", "zero_volume", "missing_bars"])]
    assert len(feed) == 6 and (feed["severity"] == "warning").all()  # never critical


@pytest.mark.parametrize("size", [1, 5, 20])
def test_batches_of_any_size_give_identical_scores(
    dirty: pd.DataFrame, schedule: ModelSchedule, one_batch: pd.DataFrame, size: int
) -> None:
    n = len(dirty.index.unique())
    cuts = [*range(SCORED_FROM, n, size), n]
    pd.testing.assert_frame_equal(_score(dirty, schedule, cuts), one_batch, check_exact=True)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(SCORED_FROM + 1, SCORED_FROM + N_SCORED - 2), max_size=4))
def test_random_batch_boundaries_give_identical_scores(
    dirty: pd.DataFrame, schedule: ModelSchedule, one_batch: pd.DataFrame, cuts: list[int]
) -> None:
    n = len(dirty.index.unique())
    bounds = [SCORED_FROM, *sorted(set(cuts)), n]
    pd.testing.assert_frame_equal(_score(dirty, schedule, bounds), one_batch, check_exact=True)


def test_the_stale_run_is_flagged_causally(dirty: pd.DataFrame, one_batch: pd.DataFrame) -> None:
    t = SCORED_FROM
    stale = one_batch["rules"].map(lambda r: "stale_price" in r)
    run = dirty.index[t + 1 : t + 9]  # 8 identical closes: the 5th to the 8th are stale
    assert stale.loc[run].tolist() == [False] * 4 + [True] * 4
    assert stale.sum() == 4
    flags = check_rules(dirty.iloc[: t + 6])  # the history ends at the run's 5th close
    assert flags["stale_price"].iloc[-1] and flags["stale_price"].sum() == 1


@pytest.mark.slow
def test_walk_forward_is_batch_independent_with_prophet(dirty: pd.DataFrame) -> None:
    kwargs = {"start": SCORED_FROM + 10, "refit_every": "W", "calendar": "XNYS", "seed": 1}
    daily = walk_forward_scores(dirty, batch=1, **kwargs)
    weekly = walk_forward_scores(dirty, batch=5, **kwargs)
    whole = walk_forward_scores(dirty, batch=100, **kwargs)
    pd.testing.assert_frame_equal(weekly, daily, check_exact=True)
    pd.testing.assert_frame_equal(whole, daily, check_exact=True)
    assert (daily["prophet"] > 0).any() and not daily["warmup"].any()


@pytest.mark.slow
def test_walk_forward_with_a_bar_count_schedule(dirty: pd.DataFrame) -> None:
    kwargs = {"start": SCORED_FROM, "refit_every": 7, "with_prophet": False, "seed": 2}
    pd.testing.assert_frame_equal(
        walk_forward_scores(dirty, batch=3, **kwargs),
        walk_forward_scores(dirty, batch=1, **kwargs),
        check_exact=True,
    )


@pytest.mark.slow
def test_fitting_inside_score_bars_does_not_depend_on_the_batches(dirty: pd.DataFrame) -> None:
    lo, mid, hi = SCORED_FROM, SCORED_FROM + 8, SCORED_FROM + 14
    stamps = dirty.index.unique()

    def scored(a: int, b: int) -> pd.DataFrame:
        rows = (dirty.index >= stamps[a]) & (dirty.index < stamps[b])
        return score_bars(dirty[rows], history=dirty[dirty.index < stamps[a]], calendar="XNYS")

    pd.testing.assert_frame_equal(
        pd.concat([scored(lo, mid), scored(mid, hi)]), scored(lo, hi), check_exact=True
    )


def _scores_up_to(bars: pd.DataFrame, t: pd.Timestamp, *, with_prophet: bool) -> pd.DataFrame:
    first = bars.index.unique()[SCORED_FROM]
    models = fit_schedule(
        bars, start=first, end=t, calendar="XNYS", with_prophet=with_prophet, seed=3
    )
    scored = score_bars(
        bars[bars.index >= first],
        history=bars[bars.index < first],
        models=models,
        calendar="XNYS",
        seed=3,
    )
    return scored[scored.index <= t]


def _changed_after(bars: pd.DataFrame, t: pd.Timestamp, factor: float, seed: int) -> pd.DataFrame:
    later = bars.index > t
    changed = bars.copy()
    rng = np.random.default_rng(seed)
    changed.loc[later, ["open", "high", "low", "close"]] *= factor
    changed.loc[later, "volume"] *= rng.uniform(0.1, 10.0, later.sum())
    return changed[~later | (rng.random(len(changed)) < 0.7)]  # and some later bars dropped


@pytest.mark.slow
@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(SCORED_FROM, SCORED_FROM + N_SCORED - 3),
    factor=st.floats(0.3, 3.0),
    seed=st.integers(0, 3),
)
def test_changing_later_bars_changes_nothing_before(
    dirty: pd.DataFrame, cut: int, factor: float, seed: int
) -> None:
    """Bars after ``t`` changed (prices, volume, some removed): scores up to ``t`` unchanged."""
    t = dirty.index.unique()[cut]
    pd.testing.assert_frame_equal(
        _scores_up_to(_changed_after(dirty, t, factor, seed), t, with_prophet=False),
        _scores_up_to(dirty, t, with_prophet=False),
        check_exact=True,
    )


def test_changing_later_bars_changes_nothing_before_with_prophet(
    dirty: pd.DataFrame, one_batch: pd.DataFrame
) -> None:
    t = dirty.index.unique()[SCORED_FROM + 12]
    changed = _scores_up_to(_changed_after(dirty, t, 0.5, 0), t, with_prophet=True)
    pd.testing.assert_frame_equal(changed, one_batch[one_batch.index <= t], check_exact=True)
