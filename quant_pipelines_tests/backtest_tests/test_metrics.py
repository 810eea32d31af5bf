"""Metrics functions, breakdown by regime, deflated Sharpe ratio and the equity plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest import (
    compute_metrics,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    get_strategy,
    metrics_by_regime,
    plot_equity,
    run_backtest,
)
from quant_pipelines.backtest.deflated import norm_cdf, norm_ppf
from quant_pipelines_tests._bars import make_bars


def test_compute_metrics_matches_engine() -> None:
    bars = make_bars(400, 5)
    res = run_backtest(bars, get_strategy("sma_crossover").positions(bars, fast=5, slow=20))
    m = compute_metrics(
        res.equity, periods_per_year=252, initial_equity=100_000.0, trades=res.trades
    )
    for k, v in m.items():
        assert v == pytest.approx(res.metrics[k], rel=1e-12), k


def test_compute_metrics_known_curve() -> None:
    m = compute_metrics(np.array([100.0, 110.0, 99.0, 120.0, 120.0]), periods_per_year=4)
    assert m["total_return"] == pytest.approx(0.2)
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["max_drawdown_duration"] == 1
    assert m["cagr"] == pytest.approx(0.2)  # four periods = one year
    assert compute_metrics([1.0, 1.0])["sharpe"] == 0.0
    rising = compute_metrics([1.0, 1.1, 1.2])
    assert rising["sortino"] == math.inf and rising["calmar"] == math.inf
    with pytest.raises(ValueError):
        compute_metrics([])


def test_metrics_by_regime() -> None:
    bars = make_bars(300, 9)
    res = run_backtest(bars, np.ones(300))
    labels = pd.Series(
        np.where(np.arange(300) < 150, "up_calm", "down_turbulent"), index=bars.index
    )
    table = metrics_by_regime(res, labels)
    assert list(table.index) == ["down_turbulent", "up_calm"]
    assert table["n_bars"].sum() == 300 and table["fraction"].sum() == pytest.approx(1.0)
    r = res.returns.to_numpy()
    assert table.loc["up_calm", "total_return"] == pytest.approx(np.prod(1 + r[:150]) - 1)
    frame = pd.DataFrame({"label": labels})
    pd.testing.assert_frame_equal(metrics_by_regime(res, frame), table)
    with pytest.raises(ValueError, match="index"):
        metrics_by_regime(res, labels.iloc[1:])


def test_normal_quantiles() -> None:
    for p, z in [(0.5, 0.0), (0.975, 1.959963984540054), (0.01, -2.3263478740408408)]:
        assert norm_ppf(p) == pytest.approx(z, abs=1e-12)
        assert norm_cdf(z) == pytest.approx(p, abs=1e-12)
    assert norm_ppf(1e-10) == pytest.approx(-6.361340902404056, rel=1e-9)


def test_deflated_sharpe_ratio_paper_example() -> None:
    # Bailey & Lopez de Prado (2014), section "numerical example": annualised SR 2.5 over
    # 1250 daily returns, 100 trials with annualised SR variance 0.5, skew -3, kurtosis 10.
    ppy = 250.0
    sr = 2.5 / math.sqrt(ppy)
    dsr = deflated_sharpe_ratio(sr, 100, 1250, -3.0, 10.0, 0.5 / ppy)
    assert dsr == pytest.approx(0.9004, abs=2e-3)
    assert expected_max_sharpe(100, 0.5 / ppy) == pytest.approx(0.1132, abs=2e-4)  # paper: 0.1132
    assert deflated_sharpe_ratio(sr, 1, 1250, 0.0, 3.0, 0.0) > dsr  # more trials deflate more
    with pytest.raises(ValueError):
        deflated_sharpe_ratio(sr, 10, 1, 0.0, 3.0, 0.1)


def test_plot_equity_png(tmp_path) -> None:
    bars = make_bars(120, 1)
    res = run_backtest(bars, get_strategy("sma_crossover").positions(bars, fast=3, slow=10))
    path = tmp_path / "equity.png"
    png = plot_equity(res, path)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and path.read_bytes() == png
