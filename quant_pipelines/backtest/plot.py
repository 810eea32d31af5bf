"""Equity-curve and drawdown chart of a backtest, rendered to PNG with matplotlib's Agg."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from quant_pipelines.backtest.result import BacktestResult


def plot_equity(
    result: BacktestResult,
    path: str | Path | None = None,
    *,
    title: str | None = None,
    dpi: int = 100,
) -> bytes:
    """Render equity (top) and drawdown (bottom) panels of a result as PNG.

    Uses an explicit Agg canvas (no pyplot, no global backend switch), so it is safe in
    worker processes and threads.

    Args:
        result: A :class:`~quant_pipelines.backtest.BacktestResult`.
        path: Also write the PNG there when given.
        title: Figure title; a metrics summary when None.
        dpi: Resolution.

    Returns:
        The PNG bytes.
    """
    equity = result.equity
    m = result.metrics
    values = equity.to_numpy()
    peak = np.maximum.accumulate(values) if len(values) else values
    dd = np.divide(values, peak, out=np.ones_like(values), where=peak > 0) - 1.0
    fig = Figure(figsize=(9, 5), dpi=dpi)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(equity.index, values, color="tab:blue", lw=1.2, label="equity")
    top.set_ylabel("equity")
    top.grid(alpha=0.3)
    bottom.fill_between(equity.index, dd * 100.0, 0.0, color="tab:red", alpha=0.4, lw=0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    top.set_title(
        title
        or (
            f"total return {m['total_return']:.1%} · Sharpe {m['sharpe']:.2f} · "
            f"max DD {m['max_drawdown']:.1%} · trades {m['n_trades']}"
        )
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
