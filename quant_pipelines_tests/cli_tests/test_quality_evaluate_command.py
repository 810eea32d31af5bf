"""``quant-pipelines quality evaluate --source DIR``: the real-data harness behind the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from quant_pipelines.cli import build_parser
from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.quality.harness import run_real_evaluation
from quant_pipelines_tests._bars import goog_bars


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quant_pipelines.cli", "quality", "evaluate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def goog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GOOG's daily bars as a date-only CSV, the way a vendor file looks."""
    directory = tmp_path_factory.mktemp("bars")
    bars = goog_bars()
    frame = bars.rename(columns=str.title)
    frame.index = bars.index.strftime("%Y-%m-%d")
    frame.to_csv(directory / "GOOG.csv", index_label="Date")
    return directory


@pytest.mark.slow
def test_cli_runs_the_harness_on_a_csv(goog_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    window = ("--start", "2012-01-01", "--end", "2013-03-01")
    done = _cli(
        "--source", str(goog_dir), "--symbols", "GOOG", *window, "--batch", "5", "--json", str(out)
    )
    # the pure harness on the same bars, read independently (moved to XNYS session opens)
    bars = goog_bars().loc["2012-01-01":"2013-03-01"]
    opens, _ = session_bounds("XNYS", bars.index.tz_convert(None))
    bars.index = pd.DatetimeIndex(opens, name="ts")
    run = run_real_evaluation({"GOOG": bars}, calendars="XNYS", batch=5)

    assert done.returncode == (0 if run.report.meets_goals() else 4), done.stderr
    assert run.report.to_markdown() in done.stdout
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(run.report.to_dict()))
    assert written["bars"] == len(bars) - len(bars) // 2
    assert {row["kind"] for row in written["per_kind"]} == {
        "price_x10",
        "price_div100",
        "high_below_low",
        "negative_price",
        "stale_run",
        "dropped_session",
        "zero_volume",
    }
    assert [g["goal"] for g in written["goals"]][:2] == [
        "clean bars at warning or above",
        "clean bars at critical",
    ]


@pytest.mark.slow
def test_missing_symbol_file_is_a_clean_error(goog_dir: Path) -> None:
    done = _cli("--source", str(goog_dir), "--symbols", "MSFT", timeout=120)
    assert done.returncode == 2
    assert "no data file for symbol 'MSFT'" in done.stderr and str(goog_dir) in done.stderr


def test_without_source_the_synthetic_defaults_stay() -> None:
    args = build_parser().parse_args(["quality", "evaluate"])
    assert args.source is None and args.start is None and args.end is None
    assert (args.rate, args.batch, args.workers) == (0.03, 1, 1)
    real = build_parser().parse_args(
        ["quality", "evaluate", "--source", "d", "--symbols", "GOOG", "--calendar", "XNYS"]
    )
    assert (real.source, real.symbols, real.calendar) == ("d", "GOOG", "XNYS")
