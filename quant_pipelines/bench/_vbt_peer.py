"""vectorbt peer of the portfolio benchmark, run as a subprocess in ``.venv-peers``.

vectorbt pulls ipython and plotly, so it lives in its own environment (``make bench-peers``)
and this script imports nothing from quant_pipelines. Usage::

    .venv-peers/bin/python _vbt_peer.py DIR

``DIR`` holds ``open.npy``, ``close.npy`` and ``size.npy`` (bars x symbols: the target weights
already shifted onto the fill bar, NaN where no order is placed) and ``config.json``
(``init_cash``, and per cost mode its ``fees`` and ``slippage`` fractions). The script runs
every mode once (the warm-up: numba compiles vectorbt's kernels), prints one JSON line
``{"ready": true, "version": ..., "final_value": {mode: value}}``, then answers each line read
from stdin: a mode name is run once more and timed (``{"mode": ..., "seconds": ...}``);
``quit`` or end of input stops it. Process start-up and compilation are never timed.

Each run is ``Portfolio.from_orders`` with target-percent sizing and one cash account
(``group_by=True, cash_sharing=True, call_seq="auto"``), orders filled at ``price`` (the
opens) and valued at ``close``, followed by ``final_value()``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    config = json.loads((folder / "config.json").read_text())
    arrays = [np.load(folder / f"{name}.npy") for name in ("open", "close", "size")]
    index = pd.date_range("2000-01-03", periods=len(arrays[0]), freq="D", name="ts")
    columns = [f"s{j}" for j in range(arrays[0].shape[1])]
    opens, close, size = (pd.DataFrame(a, index=index, columns=columns) for a in arrays)
    return opens, close, size, config


def main(argv: list[str]) -> int:
    """Warm up, report final values, then time one run per mode name read from stdin."""
    import vectorbt as vbt  # only in the peer environment

    opens, close, size, config = _load(Path(argv[1]))

    def run(mode: str) -> float:
        costs = config["modes"][mode]
        pf = vbt.Portfolio.from_orders(
            close,
            size=size,
            size_type="targetpercent",
            price=opens,
            fees=costs["fees"],
            slippage=costs["slippage"],
            init_cash=config["init_cash"],
            group_by=True,
            cash_sharing=True,
            call_seq="auto",
            freq="1D",
        )
        return float(pf.final_value())

    finals = {mode: run(mode) for mode in config["modes"]}
    print(json.dumps({"ready": True, "version": vbt.__version__, "final_value": finals}))
    sys.stdout.flush()
    for line in sys.stdin:
        mode = line.strip()
        if mode == "quit":
            break
        start = time.perf_counter()
        run(mode)
        seconds = time.perf_counter() - start
        print(json.dumps({"mode": mode, "seconds": seconds}))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
