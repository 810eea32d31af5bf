"""Combinatorial purged cross-validation splits and paths."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import CPCVPlan, CPCVSplit, make_cpcv_splits


def _bars(ranges) -> list[int]:
    return [b for lo, hi, *_ in ranges for b in range(lo, hi)]


def _expected_train(split: CPCVSplit, n_bars: int, purge: int, embargo: int) -> set[int]:
    test = set(_bars(split.test))
    removed = set()
    for lo, hi in split.test:
        removed |= set(range(max(0, lo - purge), lo)) | set(range(hi, min(n_bars, hi + embargo)))
    return set(range(n_bars)) - test - removed


def _check_plan(plan: CPCVPlan, n_bars: int, n_groups: int, k: int, purge: int, embargo: int):
    # Groups: contiguous, in order, covering [0, n_bars), each >= 2 bars.
    assert _bars(plan.groups) == list(range(n_bars))
    assert all(hi - lo >= 2 for lo, hi in plan.groups)
    sizes = [hi - lo for lo, hi in plan.groups]
    assert max(sizes) - min(sizes) <= 1

    combos = list(itertools.combinations(range(n_groups), k))
    assert plan.n_splits == math.comb(n_groups, k) == len(combos)
    for split, combo in zip(plan.splits, combos, strict=True):
        assert split.test_groups == combo
        test = _bars(split.test)
        train = _bars(split.train)
        assert test == _bars(plan.groups[g] for g in combo)  # sorted, no duplicates
        assert all(a[1] < b[0] for a, b in itertools.pairwise(split.test))  # merged
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(split.train))
        assert all(hi > lo for lo, hi in split.train)
        assert len(train) == len(set(train)) and train == sorted(train)
        assert set(train) == _expected_train(split, n_bars, purge, embargo)
        assert not set(train) & set(test)
        for lo, hi in split.test:
            assert not set(train) & set(range(lo - purge, lo))
            assert not set(train) & set(range(hi, hi + embargo))

    assert plan.n_paths == k * math.comb(n_groups, k) // n_groups
    used = set()
    for j, path in enumerate(plan.paths):
        assert _bars(path) == list(range(n_bars))  # every bar exactly once, in time order
        for g, (lo, hi, s) in enumerate(path):
            assert (lo, hi) == plan.groups[g]
            assert g in plan.splits[s].test_groups
            # The j-th split, in split order, that tests group g.
            assert s == [i for i, c in enumerate(combos) if g in c][j]
            used.add((g, s))
    # Every (group, split testing it) pair is used by exactly one path.
    assert used == {(g, i) for i, c in enumerate(combos) for g in c}


def test_default_counts():
    plan = make_cpcv_splits(600)
    assert (plan.n_splits, plan.n_paths) == (15, 5)
    assert plan.groups == tuple((100 * i, 100 * (i + 1)) for i in range(6))
    _check_plan(plan, 600, 6, 2, 0, 0)


def test_split_layout_with_purge_and_embargo():
    plan = make_cpcv_splits(60, n_groups=6, n_test_groups=2, purge=3, embargo=2)
    by_groups = {s.test_groups: s for s in plan.splits}
    s = by_groups[(1, 2)]  # adjacent test groups merge into one range
    assert s.test == ((10, 30),)
    assert s.train == ((0, 7), (32, 60))
    s = by_groups[(0, 5)]
    assert s.test == ((0, 10), (50, 60))
    assert s.train == ((12, 47),)
    s = by_groups[(2, 4)]
    assert s.test == ((20, 30), (40, 50))
    assert s.train == ((0, 17), (32, 37), (52, 60))
    _check_plan(plan, 60, 6, 2, 3, 2)


def test_purge_and_embargo_remove_exactly_their_bars():
    base = make_cpcv_splits(120, n_groups=4, n_test_groups=1)
    plan = make_cpcv_splits(120, n_groups=4, n_test_groups=1, purge=5, embargo=7)
    for before, after in zip(base.splits, plan.splits, strict=True):
        removed = set(_bars(before.train)) - set(_bars(after.train))
        ((lo, hi),) = after.test
        expected = set(range(max(0, lo - 5), lo)) | set(range(hi, min(120, hi + 7)))
        assert removed == expected
        assert set(_bars(after.train)) <= set(_bars(before.train))


def test_uneven_groups_and_single_test_group():
    plan = make_cpcv_splits(23, n_groups=5, n_test_groups=1, purge=1, embargo=1)
    assert [hi - lo for lo, hi in plan.groups] == [4, 5, 4, 5, 5]
    assert (plan.n_splits, plan.n_paths) == (5, 1)
    _check_plan(plan, 23, 5, 1, 1, 1)


@settings(max_examples=150, deadline=None)
@given(
    n_groups=st.integers(2, 8),
    data=st.data(),
    purge=st.integers(0, 12),
    embargo=st.integers(0, 12),
)
def test_properties(n_groups, data, purge, embargo):
    k = data.draw(st.integers(1, n_groups - 1), label="k")
    n_bars = data.draw(st.integers(2 * n_groups, 200), label="n_bars")
    edges = [i * n_bars // n_groups for i in range(n_groups + 1)]
    candidates = [
        CPCVSplit(c, (), tuple((edges[g], edges[g + 1]) for g in c))
        for c in itertools.combinations(range(n_groups), k)
    ]
    kwargs = {"n_groups": n_groups, "n_test_groups": k, "purge": purge, "embargo": embargo}
    if not all(_expected_train(s, n_bars, purge, embargo) for s in candidates):
        with pytest.raises(ValueError, match="no training bars"):
            make_cpcv_splits(n_bars, **kwargs)
        return
    plan = make_cpcv_splits(n_bars, **kwargs)
    _check_plan(plan, n_bars, n_groups, k, purge, embargo)


@pytest.mark.parametrize(
    ("n_bars", "kwargs", "match"),
    [
        (100, {"n_groups": 1, "n_test_groups": 1}, "n_groups must be >= 2"),
        (100, {"n_groups": 6, "n_test_groups": 0}, r"\[1, 5\], got 0"),
        (100, {"n_groups": 6, "n_test_groups": 6}, "n_test_groups"),
        (100, {"purge": -1}, "purge and embargo must be >= 0"),
        (100, {"embargo": -2}, "purge and embargo must be >= 0"),
        (11, {"n_groups": 6}, "need n_bars >= 12"),
        (60, {"n_groups": 6, "n_test_groups": 5, "purge": 5, "embargo": 5}, "no training bars"),
    ],
)
def test_errors(n_bars, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_cpcv_splits(n_bars, **kwargs)
