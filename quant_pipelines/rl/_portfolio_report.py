"""A replayed portfolio policy against a portfolio strategy (or the equal-weight benchmark).

:func:`strategy_replay` books a portfolio strategy's causal weights (computed over the whole
history, so its lookbacks are warm) on the same held-out bars as the policy;
:func:`comparison_table` and :func:`plot_comparison` render both for the Dagster UI.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from quant_pipelines.backtest.costs import CostModel
from quant_pipelines.backtest.portfolio import PortfolioResult, run_portfolio_backtest
from quant_pipelines.backtest.portfolio.strategies import portfolio_weights

TABLE_METRICS: tuple[str, ...] = ("total_return", "cagr", "sharpe", "max_drawdown", "turnover")


def strategy_replay(
    strategy: str,
    params: Mapping[str, Any],
    bars: Mapping[str, pd.DataFrame],
    *,
    start: pd.Timestamp,
    costs: CostModel,
    asset_class: str | None = None,
) -> PortfolioResult:
    """A portfolio strategy booked from flat on the bars from ``start`` on.

    Raises:
        UnknownPortfolioStrategyError: For an unknown strategy; ValueError for bad params.
    """
    weights = portfolio_weights(strategy, bars, params)
    held = {s: b[b.index >= start] for s, b in bars.items()}
    rows = weights.index[weights.index >= start]
    return run_portfolio_backtest(
        held, weights.loc[rows, list(held)], costs=costs, asset_class=asset_class
    )


def comparison_table(
    policy: PortfolioResult, other: PortfolioResult | None, other_name: str
) -> pd.DataFrame:
    """One row per book: the policy, the compared strategy (if any) and the benchmark."""
    rows = [{"book": "policy", **{k: float(policy.metrics[k]) for k in TABLE_METRICS}}]
    if other is not None:
        rows.append({"book": other_name, **{k: float(other.metrics[k]) for k in TABLE_METRICS}})
    m = policy.metrics
    rows.append(
        {
            "book": "equal-weight benchmark",
            "total_return": float(m["buy_and_hold_return"]),
            "cagr": float(m["benchmark_cagr"]),
            "sharpe": float(m["benchmark_sharpe"]),
            "max_drawdown": float(m["benchmark_max_drawdown"]),
            "turnover": 0.0,
        }
    )
    return pd.DataFrame(rows)


def plot_comparison(
    policy: PortfolioResult, other: PortfolioResult | None, other_name: str, *, dpi: int = 100
) -> bytes:
    """Equity of the policy, the compared strategy and the benchmark, as PNG bytes."""
    fig = Figure(figsize=(9, 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(policy.equity.index, policy.equity.to_numpy(), lw=1.3, label="policy")
    if other is not None:
        ax.plot(other.equity.index, other.equity.to_numpy(), lw=1.1, label=other_name)
    bench = policy.benchmark
    ax.plot(bench.index, bench.to_numpy(), lw=1.0, ls="--", color="grey", label="equal weight")
    ax.set_ylabel("equity")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(f"portfolio policy vs {other_name} ({len(policy.symbols)} symbols)")
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
