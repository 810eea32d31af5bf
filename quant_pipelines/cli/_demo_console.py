"""What the demo prints: numbered steps with live elapsed time, and a closing summary table.

On a terminal the running step's line is redrawn in place (carriage return) with its elapsed
time and sub-progress; elsewhere (a log file, a CI job, a test) each sub-item that finishes is
printed once, so the output stays readable without control characters.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

#: Dagster's own notices about its beta/preview APIs: not the reader's business in a demo.
_NOTICE_NAMES = ("BetaWarning", "PreviewWarning", "SupersessionWarning")
#: NumPy's notices on empty reductions (a symbol with no bar in a window yields NaN, as meant).
_NUMPY_NOTICES = ("All-NaN slice encountered", "Mean of empty slice")


@contextmanager
def quiet_dagster_notices() -> Iterator[list[str]]:
    """Hides Dagster's beta/preview notices (and NumPy's empty-slice ones) inside the block.

    The warning filters are restored when the block ends; other warnings are shown as usual.

    Yields:
        The distinct notices hidden, as ``"Category: message"`` (for the curious).
    """
    import dagster as dg

    categories = tuple(getattr(dg, n) for n in _NOTICE_NAMES if hasattr(dg, n))
    hidden: list[str] = []
    with warnings.catch_warnings():
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            numpy_notice = issubclass(category, RuntimeWarning) and str(message) in _NUMPY_NOTICES
            if issubclass(category, categories) or numpy_notice:
                text = f"{category.__name__}: {message}"
                if text not in hidden:
                    hidden.append(text)
                return
            original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        for category in categories:
            warnings.simplefilter("always", category)
        yield hidden


@dataclass
class StepResult:
    """What a step reports: its outcome, one key figure and optional detail lines.

    Attributes:
        figure: The step's result in one line.
        details: Further lines printed under it.
        outcome: ``ok``, or what happened instead (e.g. ``failed as intended``).
        brief: The key figure in the summary table (``figure`` when None).
    """

    figure: str
    details: list[str] = field(default_factory=list)
    outcome: str = "ok"
    brief: str | None = None


@dataclass
class _Row:
    number: int
    title: str
    outcome: str
    seconds: float
    figure: str


class Progress:
    """The running step's sub-progress (``done`` of ``total``, and what runs now)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self.done = 0
        self.total = 0
        self.label = ""

    def start(self, label: str, total: int) -> None:
        """Announces the next sub-item of ``total``."""
        self.total, self.label = total, label

    def advance(self, note: str) -> None:
        """Marks the current sub-item done; ``note`` is printed when not on a terminal."""
        self.done += 1
        self._console.sub_done(self, note)


class Console:
    """Prints the demo's steps and its summary.

    Args:
        total: Number of steps.
        stream: Where to print (stdout by default).
        live: Redraw the running step in place; default: whether ``stream`` is a terminal.
    """

    def __init__(self, total: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.rows: list[_Row] = []
        self.started = time.perf_counter()
        self._step_started = self.started
        self._head = ""
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def _redraw(self, progress: Progress) -> None:
        elapsed = time.perf_counter() - self._step_started
        part = ""
        if progress.total:
            width = 20
            filled = int(width * progress.done / progress.total)
            part = f" [{'#' * filled}{'.' * (width - filled)}] {progress.done}/{progress.total}"
            part += f" {progress.label}" if progress.label else ""
        with self._lock:
            self.stream.write(f"\r\033[K{self._head}{part} {elapsed:5.1f}s")
            self.stream.flush()

    def sub_done(self, progress: Progress, note: str) -> None:
        """Prints a finished sub-item (off a terminal; on one, the live line shows it)."""
        if not self.live:
            elapsed = time.perf_counter() - self._step_started
            self._print(f"      {progress.done}/{progress.total} {note} ({elapsed:.1f}s)")

    def step(
        self, title: str, fn: Callable[[Progress], StepResult], *, short: str | None = None
    ) -> StepResult:
        """Runs one step, showing its elapsed time, then prints its figure and details.

        Args:
            title: What the step does (printed when it starts).
            fn: The step; it may report sub-progress on the :class:`Progress` it is given.
            short: The step's name in the summary table (``title`` by default).

        Returns:
            What ``fn`` returned.
        """
        number = len(self.rows) + 1
        name = short or title
        self._head = f"[{number}/{self.total}] {title}"
        self._step_started = time.perf_counter()
        progress = Progress(self)
        stop = threading.Event()
        if self.live:
            ticker = threading.Thread(target=self._tick, args=(progress, stop), daemon=True)
            ticker.start()
        else:
            self._print(self._head)
        try:
            result = fn(progress)
        except BaseException:
            stop.set()
            self.rows.append(_Row(number, name, "ERROR", self._elapsed(), "see below"))
            raise
        finally:
            stop.set()
        seconds = self._elapsed()
        if self.live:
            self._print(f"{self._head}  {seconds:.1f}s")
        mark = "ok" if result.outcome == "ok" else result.outcome
        self._print(f"    {mark}: {result.figure}")
        for line in result.details:
            self._print(f"      {line}")
        self.rows.append(_Row(number, name, result.outcome, seconds, result.brief or result.figure))
        return result

    def _elapsed(self) -> float:
        return time.perf_counter() - self._step_started

    def _tick(self, progress: Progress, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            self._redraw(progress)

    def summary(self) -> None:
        """Prints the table of steps: number, step, outcome, duration and key figure."""
        titles = {r.number: r.title for r in self.rows}
        w_step = max([len("step")] + [len(t) for t in titles.values()])
        w_out = max([len("outcome")] + [len(r.outcome) for r in self.rows])
        head = f"  {'#':>2}  {'step':<{w_step}}  {'outcome':<{w_out}}  {'time':>6}  key figure"
        self._print("\nSummary")
        self._print(head)
        self._print("  " + "-" * (len(head) + 20))
        for r in self.rows:
            self._print(
                f"  {r.number:>2}  {titles[r.number]:<{w_step}}  {r.outcome:<{w_out}}  "
                f"{r.seconds:5.1f}s  {r.figure}"
            )
        total = time.perf_counter() - self.started
        self._print(f"  {'':>2}  {'total':<{w_step}}  {'':<{w_out}}  {total:5.1f}s")
