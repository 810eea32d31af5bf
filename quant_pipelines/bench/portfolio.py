"""Portfolio benchmarks: one book of 100 symbols against vectorbt, and a cross-sectional sweep.

Every figure is measured in the same run as its reference:

* ``run_portfolio_backtest`` on 100 seeded synthetic equities x 5,000 daily bars
  (``SyntheticSource``), cross-sectional momentum weights rebalanced monthly, with flat costs
  and with volume-share costs, against vectorbt's ``Portfolio.from_orders`` (target-percent
  sizing, one cash account, ``call_seq="auto"``) on the same weights with flat costs. vectorbt
  runs in its own environment (``make bench-peers``) through :mod:`._vbt_peer`, a subprocess
  that times each run itself after a warm-up; the two engines alternate, round after round,
  and each figure is a median. Without ``.venv-peers`` the rows say vectorbt is unavailable.
* The agreement of the two books' final equity with zero costs: vectorbt gets the weights
  shifted onto the fill bar and the opens as ``price``, as our targets decided at close t
  fill at open t+1.
* A 1,000-set sweep of ``xs_momentum`` (lookback, skip, k) on the same universe, the aligned
  panel built once, in combinations per second, against single evaluations
  (``portfolio_weights`` + ``run_portfolio_backtest``) timed between the sweep's chunks.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from quant_pipelines.backtest.costs import FlatCosts, VolumeShareCosts
from quant_pipelines.backtest.portfolio import (
    get_portfolio_strategy,
    portfolio_weights,
    run_portfolio_backtest,
)
from quant_pipelines.backtest.portfolio._xs_panel import build_panel
from quant_pipelines.bench._report import Figure
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.marketdata.universe import Symbol, Universe

AREA = "portfolio"
STRATEGY = "xs_momentum"
FLAT = FlatCosts(commission=0.001, slippage_bps=2.0)
ZERO = FlatCosts(commission=0.0, slippage_bps=0.0)
VOLUME = VolumeShareCosts()
INITIAL_EQUITY = 100_000.0
PEER_PYTHON = Path(__file__).resolve().parents[2] / ".venv-peers" / "bin" / "python"
UNAVAILABLE = "vectorbt unavailable (no .venv-peers: run `make bench-peers`)"
SKIPPED = "vectorbt not run (quick sizes: its import alone takes seconds)"

NOTES = (
    "vectorbt 1.2.0 runs in `.venv-peers` (`make bench-peers`) and times `from_orders` + "
    "`final_value()` inside its own process after a numba warm-up; our figure is the whole "
    "`run_portfolio_backtest` call (alignment, fills, metrics, trades, contributions). vectorbt "
    "has no volume-share model: both cost rows are compared with its flat-cost run. The "
    "zero-cost row compares final equities (ratio 1 = same book); with costs the books differ "
    "slightly since vectorbt sizes target percent at the unslipped price."
)


def universe_bars(n_symbols: int, n_bars: int, *, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``n_bars`` daily bars of ``n_symbols`` seeded synthetic equities (one calendar)."""
    uni = Universe([Symbol(f"S{i:03d}", "equity") for i in range(n_symbols)])
    source = SyntheticSource(seed=seed, universe=uni)
    return {s: source.bars(s, "2000-01-01", "2030-12-31").iloc[:n_bars] for s in uni.names}


def vbt_inputs(bars: dict[str, pd.DataFrame], weights: pd.DataFrame) -> dict[str, np.ndarray]:
    """Opens, closes and order sizes for vectorbt: monthly targets moved onto the fill bar."""
    opens = np.column_stack([bars[s]["open"].to_numpy(float) for s in weights.columns])
    close = np.column_stack([bars[s]["close"].to_numpy(float) for s in weights.columns])
    idx = weights.index.tz_convert("UTC").tz_localize(None)
    decide = np.ones(len(idx), dtype=bool)
    decide[1:] = (idx.year * 12 + idx.month)[1:] != (idx.year * 12 + idx.month)[:-1]
    size = np.full(weights.shape, np.nan)
    rows = np.flatnonzero(decide[:-1])
    size[rows + 1] = weights.to_numpy()[rows]
    return {"open": opens, "close": close, "size": size}


class VbtPeer:
    """The vectorbt subprocess: warmed up on start, then one timed run per request.

    Args:
        folder: Where the ``.npy`` inputs and ``config.json`` are written.
        arrays: ``open``, ``close`` and ``size`` (see :func:`vbt_inputs`).
    """

    def __init__(self, folder: Path, arrays: dict[str, np.ndarray]) -> None:
        for name, values in arrays.items():
            np.save(folder / f"{name}.npy", values)
        modes = {
            "zero": {"fees": 0.0, "slippage": 0.0},
            "flat": {"fees": FLAT.commission, "slippage": FLAT.slippage_bps / 1e4},
        }
        config = {"init_cash": INITIAL_EQUITY, "modes": modes}
        (folder / "config.json").write_text(json.dumps(config))
        script = Path(__file__).with_name("_vbt_peer.py")
        self._proc = subprocess.Popen(
            [str(PEER_PYTHON), str(script), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._read()
        self.version: str = ready["version"]
        self.final_value: dict[str, float] = ready["final_value"]

    def _read(self) -> dict:
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line:
            raise RuntimeError(f"vectorbt peer exited with code {self._proc.wait()}")
        return json.loads(line)

    def seconds(self, mode: str) -> float:
        """Seconds of one vectorbt run in ``mode`` ("zero" or "flat"), timed by the peer."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(mode + "\n")
        self._proc.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        """Stop the subprocess."""
        if self._proc.stdin:
            self._proc.stdin.write("quit\n")
            self._proc.stdin.close()
        self._proc.wait(timeout=60)


def _book_seconds(bars: dict[str, pd.DataFrame], weights: pd.DataFrame, costs: object) -> float:
    start = time.perf_counter()
    run_portfolio_backtest(bars, weights, costs=costs, rebalance="monthly")
    return time.perf_counter() - start


def _book_figures(
    bars: dict[str, pd.DataFrame], *, rounds: int, label: str, with_peer: bool
) -> list[Figure]:
    """Our engine against vectorbt, alternating, medians; plus the zero-cost agreement."""
    weights = portfolio_weights(STRATEGY, bars)
    ours_zero = float(
        run_portfolio_backtest(bars, weights, costs=ZERO, rebalance="monthly").equity.iloc[-1]
    )
    for costs in (FLAT, VOLUME):  # compile and warm the caches
        _book_seconds(bars, weights, costs)
    times: dict[str, list[float]] = {"flat": [], "volume": [], "vbt": []}
    peer, peer_final = None, {}
    with tempfile.TemporaryDirectory(prefix="qp-bench-vbt-") as tmp:
        missing = UNAVAILABLE if not PEER_PYTHON.exists() else ""
        if with_peer and not missing:
            peer = VbtPeer(Path(tmp), vbt_inputs(bars, weights))
            peer_final = peer.final_value
        elif with_peer:
            print(f"portfolio bench: {missing}", flush=True)
        try:
            for r in range(rounds):
                if peer is not None and r % 2:
                    times["vbt"].append(peer.seconds("flat"))
                times["flat"].append(_book_seconds(bars, weights, FLAT))
                times["volume"].append(_book_seconds(bars, weights, VOLUME))
                if peer is not None and not r % 2:
                    times["vbt"].append(peer.seconds("flat"))
        finally:
            if peer is not None:
                peer.close()
    med = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
    ref = "vectorbt from_orders, flat costs" if peer else (missing if with_peer else SKIPPED)
    goal = 1.0 if peer else None
    figures = [
        Figure(AREA, f"portfolio backtest {label}, monthly, flat costs", med["flat"], "s",
               ref, med["vbt"], goal=goal, higher_is_better=False),
        Figure(AREA, f"portfolio backtest {label}, monthly, volume-share costs", med["volume"],
               "s", ref, med["vbt"], goal=goal, higher_is_better=False),
    ]  # fmt: skip
    if peer_final:
        theirs = peer_final["zero"]
        diff = abs(ours_zero - theirs) / abs(theirs)
        print(f"portfolio bench: zero-cost final equity ours {ours_zero:,.6f} vectorbt "
              f"{theirs:,.6f} rel. diff {diff:.2e}", flush=True)  # fmt: skip
        figures.append(
            Figure(AREA, f"final equity {label}, zero costs (rel. diff {diff:.1e})", ours_zero,
                   "$", "vectorbt final value, same weights", theirs)
        )  # fmt: skip
    return figures


def sweep_sets(n_sets: int, n_symbols: int, *, seed: int = 0) -> list[dict[str, int]]:
    """``n_sets`` distinct seeded (lookback, skip, k) sets of ``xs_momentum``."""
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int, int]] = set()
    while len(seen) < n_sets:
        lookback = int(rng.integers(21, 253))
        skip = int(rng.integers(0, min(22, lookback)))
        seen.add((lookback, skip, int(rng.integers(1, max(2, n_symbols // 3) + 1))))
    return [{"lookback": lb, "skip": sk, "k": k} for lb, sk, k in sorted(seen)]


def _evaluate(bars: dict[str, pd.DataFrame], weights: pd.DataFrame) -> float:
    result = run_portfolio_backtest(bars, weights, costs=FLAT, rebalance="monthly")
    return result.metrics["sharpe"]


def _sweep_figure(bars: dict[str, pd.DataFrame], n_sets: int, *, label: str) -> Figure:
    """Sweep in chunks (panel built once); a single evaluation timed between chunks."""
    strategy = get_portfolio_strategy(STRATEGY)
    sets = sweep_sets(n_sets, len(bars))
    panel = build_panel(bars, min_symbols=strategy.min_symbols, who=STRATEGY)
    chunks = np.array_split(np.arange(n_sets), min(10, n_sets))
    sweep_s, single = 0.0, []
    for i, chunk in enumerate(chunks):
        params = sets[(i * 7919) % n_sets]
        start = time.perf_counter()
        _evaluate(bars, portfolio_weights(STRATEGY, bars, params))
        single.append(time.perf_counter() - start)
        start = time.perf_counter()
        for j in chunk:
            p = strategy.resolve_params(sets[j])
            _evaluate(bars, panel.frame(strategy.compute(panel, p)))
        sweep_s += time.perf_counter() - start
    return Figure(AREA, f"sweep of {n_sets:,} xs_momentum sets {label}", n_sets / sweep_s,
                  "combinations/s", "single evaluations (weights + backtest)",
                  1.0 / statistics.median(single))  # fmt: skip


def run(*, quick: bool = False, with_peer: bool | None = None) -> list[Figure]:
    """Run the portfolio benchmarks.

    Args:
        quick: Small sizes (20 symbols x 1,000 bars, 20 sets), for a smoke test.
        with_peer: Run vectorbt (from ``.venv-peers``); by default only at full sizes, as
            its start-up alone takes longer than the quick run.

    Returns:
        The figures, area "portfolio".
    """
    n_symbols, n_bars = (20, 1_000) if quick else (100, 5_000)
    label = f"({n_symbols} symbols x {n_bars:,} bars)"
    bars = universe_bars(n_symbols, n_bars)
    peer = not quick if with_peer is None else with_peer
    figures = _book_figures(bars, rounds=3 if quick else 9, label=label, with_peer=peer)
    figures.append(_sweep_figure(bars, 20 if quick else 1_000, label=label))
    return figures
