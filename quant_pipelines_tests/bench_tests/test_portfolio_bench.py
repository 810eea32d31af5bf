"""The portfolio benchmark's inputs to vectorbt, its sweep sets and its quick run without a peer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quant_pipelines.backtest.portfolio import portfolio_weights
from quant_pipelines.bench import Figure, portfolio


def test_vbt_inputs_move_month_start_targets_onto_the_next_bar() -> None:
    bars = portfolio.universe_bars(3, 90)
    weights = portfolio_weights("xs_momentum", bars, {"lookback": 10, "skip": 1, "k": 1})
    got = portfolio.vbt_inputs(bars, weights)
    month = weights.index.tz_convert("UTC").month
    starts = [0] + [i for i in range(1, len(month)) if month[i] != month[i - 1]]
    orders = np.flatnonzero(~np.isnan(got["size"]).all(axis=1))
    assert orders.tolist() == [t + 1 for t in starts if t + 1 < len(month)]
    for t in starts:
        np.testing.assert_array_equal(got["size"][t + 1], weights.to_numpy()[t])
    np.testing.assert_array_equal(got["open"][:, 2], bars["S002"]["open"].to_numpy())
    np.testing.assert_array_equal(got["close"][:, 0], bars["S000"]["close"].to_numpy())


def test_sweep_sets_are_distinct_valid_and_seeded() -> None:
    sets = portfolio.sweep_sets(200, 30, seed=3)
    keys = {(s["lookback"], s["skip"], s["k"]) for s in sets}
    assert len(keys) == 200
    assert all(0 <= s["skip"] < s["lookback"] and 1 <= s["k"] <= 10 for s in sets)
    assert sets == portfolio.sweep_sets(200, 30, seed=3)
    assert sets != portfolio.sweep_sets(200, 30, seed=4)


def test_quick_run_reports_a_missing_peer_instead_of_failing(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setattr(portfolio, "PEER_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    figures = portfolio.run(quick=True, with_peer=True)
    assert figures and all(isinstance(f, Figure) and f.area == "portfolio" for f in figures)
    assert all(math.isfinite(f.value) and f.value > 0 for f in figures)
    books = [f for f in figures if f.name.startswith("portfolio backtest")]
    assert len(books) == 2
    assert all(f.reference_name == portfolio.UNAVAILABLE and f.goal is None for f in books)
    (sweep,) = [f for f in figures if f.name.startswith("sweep")]
    assert sweep.unit == "combinations/s" and sweep.reference_value > 0
