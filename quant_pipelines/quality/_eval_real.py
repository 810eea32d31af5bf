"""Metrics of the real-data evaluation: clean-bar alert rates, recall per planted kind, precision.

:func:`evaluate_real` is pure. Its inputs are, per symbol, the scores of a production replay of
the clean bars, the scores of a replay of a corrupted copy and the copy's labels (from
:func:`~quant_pipelines.quality.corruptions.plant_corruptions`). Matching rules:

* an *event* is one planted corruption: one label for point kinds, a run of consecutive labels
  for ``stale_run``, a removed row for ``dropped_session``;
* a point event is caught at a severity when its bar has at least that severity; a dropped
  session when the first bar after the gap has; a stale run when *every* bar from its
  ``stale_min``-th identical close on has (the bars before it cannot be known causally: up to
  then the run looks like a quiet market);
* the bars of an event (its labels, and the bar after a gap) are *explained*; the others are
  clean. Precision at a severity = explained bars at that severity or above / all bars at that
  severity or above, on the corrupted copy;
* the false-positive rates and the early-close check use the replay of the clean bars, where
  every scored bar is clean.

Private helper of :mod:`quant_pipelines.quality`; :class:`RealDataReport` is what the harness
returns and the CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from quant_pipelines._utils.jsonsafe import json_safe
from quant_pipelines.quality.evaluation import _per_ts
from quant_pipelines.quality.goals import REAL_DATA_GOALS, GoalReport, QualityGoal

RUN_KINDS: tuple[str, ...] = ("stale_run",)
"""Planted kinds whose consecutive labels form one event."""

GAP_KINDS: tuple[str, ...] = ("dropped_session",)
"""Planted kinds whose labelled rows were removed (carried by the next bar)."""

AFTER = 3
"""Bars after an event whose alerts on clean bars are counted as the event's side effects."""


@dataclass(frozen=True)
class RealDataReport(GoalReport):
    """Results of :func:`evaluate_real`.

    Attributes:
        per_kind: One row per planted kind: ``events``, ``recall_warning``,
            ``recall_critical``, and ``alerts_after`` / ``critical_after`` (clean bars at
            warning+ / critical among the :data:`AFTER` bars after each event).
        alerts: One row per alert kind the sentinel predicted on the corrupted copy (its
            ``kind`` column): ``flagged`` (warning+), ``critical``, ``precision_warning``,
            ``precision_critical``.
        bars: Scored bars of the clean replay.
        fp_rate_warning: Share of them at warning or above.
        fp_rate_critical: Share of them at critical.
        early_closes: Scored bars of the clean replay on early-close sessions.
        early_closes_flagged: Of which at warning or above.
        corrupted_bars: Scored bars of the corrupted replay.
        corrupted_clean_bars: Of which not part of an event.
        precision_warning: Explained bars / bars at warning or above (corrupted replay).
        precision_critical: Explained bars / bars at critical (corrupted replay).
    """

    per_kind: pd.DataFrame
    alerts: pd.DataFrame
    bars: int
    fp_rate_warning: float
    fp_rate_critical: float
    early_closes: int
    early_closes_flagged: int
    corrupted_bars: int
    corrupted_clean_bars: int
    precision_warning: float
    precision_critical: float

    default_goals: ClassVar[tuple[QualityGoal, ...]] = REAL_DATA_GOALS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (NaN as None), the goals included."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: json_safe(v) for k, v in r.items()} for r in frame.to_dict("records")]

        out = {k: json_safe(v) for k, v in asdict(self).items() if k not in ("per_kind", "alerts")}
        out["per_kind"] = records(self.per_kind.reset_index())
        out["alerts"] = records(self.alerts.reset_index())
        out["goals"] = records(self.goal_results())
        return out

    def to_markdown(self) -> str:
        """Tables for ``docs/quality.md`` or the CLI."""
        lines = [
            "| planted kind | events | recall (warning+) | recall (critical) | alerts on the "
            f"{AFTER} bars after | of which critical |",
            "|---|---|---|---|---|---|",
        ]
        for kind, r in self.per_kind.iterrows():
            lines.append(
                f"| {kind} | {int(r['events'])} | {_fmt(r['recall_warning'])} | "
                f"{_fmt(r['recall_critical'])} | {int(r['alerts_after'])} | "
                f"{int(r['critical_after'])} |"
            )
        lines += [
            "",
            "| alert kind (corrupted copy) | warning+ | critical | precision (warning+) | "
            "precision (critical) |",
            "|---|---|---|---|---|",
        ]
        for kind, r in self.alerts.iterrows():
            lines.append(
                f"| {kind} | {int(r['flagged'])} | {int(r['critical'])} | "
                f"{_fmt(r['precision_warning'])} | {_fmt(r['precision_critical'])} |"
            )
        lines += [
            "",
            f"Clean replay: {self.bars} bars, {self.fp_rate_warning:.2%} at warning+, "
            f"{self.fp_rate_critical:.3%} at critical; early closes flagged: "
            f"{self.early_closes_flagged} of {self.early_closes}. Corrupted replay: "
            f"{self.corrupted_bars} bars ({self.corrupted_clean_bars} clean); precision "
            f"{_fmt(self.precision_warning)} at warning+, {_fmt(self.precision_critical)} at "
            "critical.",
            "",
            "| goal | measured | target | met |",
            "|---|---|---|---|",
        ]
        for _, g in self.goal_results().iterrows():
            digits = {"clean": 4, "early": 0}.get(g["goal"].split(" ")[0], 3)
            lines.append(
                f"| {g['goal']} | {_fmt(g['measured'], digits)} | {g['target']} | "
                f"{'met' if g['met'] else '**not met**'} |"
            )
        return "\n".join(lines) + "\n"


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x != x else f"{x:.{digits}f}"


def _events(
    labels: pd.DataFrame, present: np.ndarray, stale_min: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(kind, required timestamps, explained timestamps)`` per event."""
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    ts = pd.DatetimeIndex(labels["ts"]).asi8
    kinds = labels["kind"].to_numpy()
    for kind in dict.fromkeys(kinds):
        stamps = np.unique(ts[kinds == kind])
        if kind in GAP_KINDS:
            nxt = np.searchsorted(present, stamps, side="right")
            for after in np.unique(nxt):
                carrier = present[after : after + 1]
                out.append((kind, carrier, carrier))
        elif kind in RUN_KINDS:
            where = np.searchsorted(present, stamps)
            breaks = np.flatnonzero(np.diff(where) != 1) + 1
            for run in np.split(stamps, breaks):
                # the n-th label of a run is its (n + 1)-th identical close
                required = run[max(0, min(stale_min - 2, len(run) - 1)) :]
                out.append((kind, required, run))
        else:
            out += [(kind, np.array([s]), np.array([s])) for s in stamps]
    return out


def _positions(present: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    at = np.searchsorted(present, stamps)
    ok = (at < len(present)) & (present[np.minimum(at, len(present) - 1)] == stamps)
    return at[ok]


def evaluate_real(
    clean: Mapping[str, pd.DataFrame],
    corrupted: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    *,
    early_closes: Mapping[str, pd.DatetimeIndex] | None = None,
    stale_min: int = 5,
) -> RealDataReport:
    """Alert rates on clean bars, recall per planted kind and precision on the corrupted copies.

    Args:
        clean: Scores of the clean replay per symbol (columns ``severity`` and ``kind``).
        corrupted: ``(scores, labels)`` of the corrupted replay per symbol.
        early_closes: Bar timestamps of early-close sessions per symbol.
        stale_min: Identical closes from which a stale run must be flagged.

    Returns:
        The report.
    """
    n = fp_w = fp_c = n_early = early_w = 0
    for symbol, scores in clean.items():
        per_ts = _per_ts(scores)
        level = per_ts["level"].to_numpy()
        n += len(level)
        fp_w += int((level >= 1).sum())
        fp_c += int((level >= 2).sum())
        early = pd.DatetimeIndex([] if early_closes is None else early_closes.get(symbol, []))
        at = _positions(per_ts.index.to_numpy(), np.unique(early.asi8))
        n_early += len(at)
        early_w += int((level[at] >= 1).sum())

    stats: dict[str, np.ndarray] = {}  # kind -> events, caught w, caught c, after w, after c
    alerts: dict[str, np.ndarray] = {}  # kind -> flagged, critical, flagged ok, critical ok
    m = m_clean = 0
    for scores, labels in corrupted.values():
        per_ts = _per_ts(scores)
        present = per_ts.index.to_numpy()
        level = per_ts["level"].to_numpy()
        explained = np.zeros(len(present), dtype=bool)
        events = _events(labels, present, stale_min)
        for _, _, stamps in events:
            explained[_positions(present, stamps)] = True
        for kind, required, stamps in events:
            need = _positions(present, required)
            low = level[need].min() if len(need) == len(required) and len(need) else 0
            last = _positions(present, stamps).max(initial=-1)
            after = np.arange(last + 1, min(last + 1 + AFTER, len(present)))
            after = after[~explained[after]] if last >= 0 else after[:0]
            row = np.array(
                [1, low >= 1, low >= 2, (level[after] >= 1).sum(), (level[after] >= 2).sum()]
            )
            stats[kind] = stats.get(kind, np.zeros(5, dtype=np.int64)) + row
        kinds = per_ts["kind"].to_numpy()
        for kind in set(kinds[level >= 1]):
            mine = kinds == kind
            row = np.array(
                [
                    (mine & (level >= 1)).sum(),
                    (mine & (level >= 2)).sum(),
                    (mine & (level >= 1) & explained).sum(),
                    (mine & (level >= 2) & explained).sum(),
                ]
            )
            alerts[kind] = alerts.get(kind, np.zeros(4, dtype=np.int64)) + row
        m += len(present)
        m_clean += int((~explained).sum())

    per_kind = pd.DataFrame.from_dict(
        {
            k: {
                "events": int(s[0]),
                "recall_warning": s[1] / s[0],
                "recall_critical": s[2] / s[0],
                "alerts_after": int(s[3]),
                "critical_after": int(s[4]),
            }
            for k, s in sorted(stats.items())
        },
        orient="index",
        columns=["events", "recall_warning", "recall_critical", "alerts_after", "critical_after"],
    )
    per_kind.index.name = "kind"
    alert_frame = pd.DataFrame.from_dict(
        {
            k: {
                "flagged": int(a[0]),
                "critical": int(a[1]),
                "precision_warning": a[2] / a[0] if a[0] else np.nan,
                "precision_critical": a[3] / a[1] if a[1] else np.nan,
            }
            for k, a in sorted(alerts.items())
        },
        orient="index",
        columns=["flagged", "critical", "precision_warning", "precision_critical"],
    )
    alert_frame.index.name = "kind"
    total = np.sum(list(alerts.values()), axis=0) if alerts else np.zeros(4)
    return RealDataReport(
        per_kind=per_kind,
        alerts=alert_frame,
        bars=n,
        fp_rate_warning=fp_w / n if n else np.nan,
        fp_rate_critical=fp_c / n if n else np.nan,
        early_closes=n_early,
        early_closes_flagged=early_w,
        corrupted_bars=m,
        corrupted_clean_bars=m_clean,
        precision_warning=total[2] / total[0] if total[0] else np.nan,
        precision_critical=total[3] / total[1] if total[1] else np.nan,
    )
