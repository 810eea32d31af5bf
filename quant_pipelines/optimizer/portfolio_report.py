"""The ``portfolio_backtest`` of a portfolio study's selected trial: equity against the
equal-weight benchmark (a PNG) and each symbol's contribution (a table).

The selected parameters are backtested once over the study's whole period (in-sample and
holdout), with the study's engine options; the holdout's first bar is marked on the chart.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from quant_pipelines.backtest import Costs
from quant_pipelines.backtest.engine import DEFAULT_COSTS
from quant_pipelines.backtest.portfolio import PortfolioResult, run_portfolio_backtest
from quant_pipelines.backtest.portfolio.strategies import get_portfolio_strategy
from quant_pipelines.optimizer.portfolio import check_portfolio_options

#: Columns of the contribution table, in display order.
CONTRIBUTION_COLUMNS: tuple[str, ...] = (
    "symbol",
    "pnl",
    "return_contribution",
    "risk_contribution",
    "costs",
)


@dataclass(frozen=True)
class PortfolioBacktest:
    """A portfolio study's selected trial, backtested over the study's period.

    Attributes:
        strategy: The portfolio strategy.
        params: Its parameters.
        symbols: The universe.
        metrics: The portfolio's metrics (benchmark ones included).
        contributions: One row per symbol (:data:`CONTRIBUTION_COLUMNS`).
        equity: ``(timestamp, equity, benchmark)`` per bar.
        holdout_start: First holdout bar, or None.
        png: Equity against the benchmark, as PNG bytes.
    """

    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    metrics: dict[str, float]
    contributions: list[dict[str, Any]]
    equity: list[tuple[pd.Timestamp, float, float]] = field(repr=False)
    holdout_start: pd.Timestamp | None
    png: bytes = field(repr=False)

    def markdown(self) -> str:
        """The contribution table as Markdown (sorted by return contribution)."""
        lines = [
            "| " + " | ".join(CONTRIBUTION_COLUMNS) + " |",
            "|" + "---|" * len(CONTRIBUTION_COLUMNS),
        ]
        for row in self.contributions:
            cells = [row["symbol"]] + [f"{float(row[c]):.4g}" for c in CONTRIBUTION_COLUMNS[1:]]
            lines.append("| " + " | ".join(cells) + " |")
        m = self.metrics
        pnl = sum(float(r["pnl"]) for r in self.contributions)
        lines.append(
            f"| **portfolio** | {pnl:.4g} | {m['total_return']:.4g} | 1 | {m['total_costs']:.4g} |"
        )
        return "\n".join(lines)

    def to_document(self) -> dict[str, Any]:
        """A BSON-able document (stored beside the leaderboard row, in the study document)."""
        return {
            "strategy": self.strategy,
            "params": dict(self.params),
            "symbols": list(self.symbols),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "contributions": [dict(r) for r in self.contributions],
            "equity": [
                {"ts": ts.to_pydatetime(), "equity": e, "benchmark": b} for ts, e, b in self.equity
            ],
            "holdout_start": None
            if self.holdout_start is None
            else self.holdout_start.to_pydatetime(),
            "png": self.png,
        }


def portfolio_backtest(
    bars: Mapping[str, pd.DataFrame],
    strategy: str,
    params: Mapping[str, Any],
    *,
    costs: Costs = DEFAULT_COSTS,
    portfolio_options: Mapping[str, Any] | None = None,
    holdout_start: pd.Timestamp | None = None,
    periods_per_year: float | None = None,
    asset_class: str | None = None,
) -> PortfolioBacktest:
    """Backtests a portfolio strategy's parameters over ``bars`` and renders the result.

    Args:
        bars: Bar frames by symbol (the study's whole period).
        strategy: A portfolio strategy name.
        params: Its parameters (defaults fill the rest).
        costs: The study's cost model.
        portfolio_options: The study's engine options (``rebalance``, ``max_gross_leverage``,
            ``allow_short``).
        holdout_start: First holdout bar, marked on the chart.
        periods_per_year: Annualisation; overrides ``asset_class``.
        asset_class: Sets the annualisation.

    Returns:
        The :class:`PortfolioBacktest`.

    Raises:
        UnknownPortfolioStrategyError: For an unknown strategy.
        ValueError: For bad parameters, bad options or bad bars.
    """
    strat = get_portfolio_strategy(strategy)
    p = strat.resolve_params(params)
    options = check_portfolio_options(portfolio_options)
    result = run_portfolio_backtest(
        bars,
        strat.weights(bars, **p),
        costs=costs,
        periods_per_year=periods_per_year,
        asset_class=asset_class,
        **options,
    )
    contrib = result.contributions.sort_values("return_contribution", ascending=False)
    rows = [
        {"symbol": str(sym), **{c: float(contrib.loc[sym, c]) for c in CONTRIBUTION_COLUMNS[1:]}}
        for sym in contrib.index
    ]
    equity = [
        (ts, float(e), float(b))
        for ts, e, b in zip(result.equity.index, result.equity, result.benchmark, strict=True)
    ]
    return PortfolioBacktest(
        strategy=strat.name,
        params=p,
        symbols=list(result.symbols),
        metrics={k: float(v) for k, v in result.metrics.items()},
        contributions=rows,
        equity=equity,
        holdout_start=holdout_start,
        png=plot_against_benchmark(result, title=strat.name, holdout_start=holdout_start),
    )


def plot_against_benchmark(
    result: PortfolioResult,
    *,
    title: str = "portfolio",
    holdout_start: pd.Timestamp | None = None,
    dpi: int = 90,
) -> bytes:
    """The portfolio's equity and the equal-weight benchmark's, as PNG bytes (Agg canvas)."""
    fig = Figure(figsize=(8, 4), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = result.equity.index
    ax.plot(x, result.equity.to_numpy(), label="portfolio", linewidth=1.2)
    ax.plot(x, result.benchmark.to_numpy(), label="equal-weight buy-and-hold", linewidth=1.0)
    if holdout_start is not None:
        ax.axvline(holdout_start, color="grey", linestyle="--", linewidth=0.8, label="holdout")
    m = result.metrics
    ax.set_title(
        f"{title}: Sharpe {m['sharpe']:.2f} vs benchmark {m['benchmark_sharpe']:.2f}; "
        f"{len(result.symbols)} symbols",
        fontsize=9,
    )
    ax.set_ylabel("equity")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
