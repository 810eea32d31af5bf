"""The demo's console: live progress on a terminal, plain lines elsewhere, the summary table."""

from __future__ import annotations

import io
import time
import warnings

import dagster as dg
import pytest

from quant_pipelines.cli._demo_console import Console, Progress, StepResult, quiet_dagster_notices


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _two_parts(progress: Progress) -> StepResult:
    for part in ("a", "b"):
        progress.start(part, 2)
        time.sleep(0.6)
        progress.advance(f"{part} done")
    return StepResult("2 parts", ["detail"], brief="two")


def test_a_terminal_sees_a_live_bar_and_elapsed_time() -> None:
    stream = _Tty()
    console = Console(1, stream)
    console.step("long step", _two_parts, short="long")
    text = stream.getvalue()
    # redrawn in place: the bar, the items done, the item running, the elapsed time
    assert "\r\033[K[1/1] long step [##########..........] 1/2 b " in text
    assert "b done" not in text  # sub-items are shown on the live line only
    assert text.endswith("    ok: 2 parts\n\r\033[K      detail\n")


def test_elsewhere_each_sub_item_is_one_plain_line_and_the_table_sums_up() -> None:
    stream = io.StringIO()
    console = Console(2, stream)
    console.step("long step", _two_parts, short="long")
    console.step("bad", lambda _: StepResult("check x failed: v=1", outcome="failed as intended"))
    console.summary()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[:3] == ["[1/2] long step", lines[1], lines[2]]
    assert lines[1].startswith("      1/2 a done (") and lines[2].startswith("      2/2 b done (")
    table = lines[lines.index("Summary") + 1 :]
    assert table[0].split() == ["#", "step", "outcome", "time", "key", "figure"]
    assert table[2].split()[:3] == ["1", "long", "ok"] and table[2].endswith("two")
    assert "failed as intended" in table[3] and table[3].endswith("check x failed: v=1")
    assert table[4].split()[0] == "total"


def test_a_step_that_raises_is_recorded_as_an_error() -> None:
    console = Console(1, io.StringIO())

    def boom(_: Progress) -> StepResult:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        console.step("boom", boom)
    assert [(r.title, r.outcome) for r in console.rows] == [("boom", "ERROR")]


def test_dagster_notices_are_hidden_in_the_block_only() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_dagster_notices() as hidden:
            warnings.warn("beta thing", dg.BetaWarning, stacklevel=1)
            warnings.warn("preview thing", dg.PreviewWarning, stacklevel=1)
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=1)
            warnings.warn("ours", UserWarning, stacklevel=1)
        warnings.warn("after", dg.BetaWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["ours", "after"]
    assert hidden == [
        "BetaWarning: beta thing",
        "PreviewWarning: preview thing",
        "RuntimeWarning: All-NaN slice encountered",
    ]
