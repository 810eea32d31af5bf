"""Evaluation harness: precision and recall per anomaly kind, and false positives on clean bars.

:func:`evaluate` is a pure function of score frames and ground-truth labels (the labels of
``SyntheticSource.bars_with_anomalies``). Matching rules:

* an *event* is one injected anomaly: one label for point kinds (spike, burst, OHLC, duplicate,
  non-positive price), a run of consecutive labelled bars for ``stale_price``, and a run of
  consecutive removed bars for ``missing_bars``;
* an event is *detected at* a severity when one of its bars has at least that severity; a
  ``missing_bars`` event is carried by the first bar after the gap (the rule flags it there);
* *recall* = detected events / events; ``bar_recall_warning`` counts labelled bars instead;
* *precision* of a kind = flagged bars (warning or above) whose predicted ``kind`` is that kind
  and that belong to any event / all flagged bars predicted as that kind;
* *clean bars* are bars that belong to no event; the false-positive rate at a severity is the
  share of clean bars at that severity or above.

:func:`run_evaluation` (in :mod:`quant_pipelines.quality.harness`) produces the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from quant_pipelines.quality.goals import QUALITY_GOALS, GoalReport, QualityGoal
from quant_pipelines.quality.severity import severity_rank

_RUN_KINDS = ("stale_price",)
_GAP_KINDS = ("missing_bars",)


@dataclass(frozen=True)
class EvaluationReport(GoalReport):
    """Results of :func:`evaluate`.

    Attributes:
        per_kind: One row per kind: ``events``, ``recall_warning``, ``recall_critical``,
            ``bar_recall_warning``, ``flagged`` (bars predicted as the kind) and ``precision``.
        bars: Distinct scored timestamps.
        clean_bars: Of which clean.
        fp_rate_warning: Share of clean bars at warning or above.
        fp_rate_critical: Share of clean bars at critical.
        precision: Share of flagged bars (warning or above) that belong to an event.
    """

    per_kind: pd.DataFrame
    bars: int
    clean_bars: int
    fp_rate_warning: float
    fp_rate_critical: float
    precision: float

    default_goals: ClassVar[tuple[QualityGoal, ...]] = QUALITY_GOALS

    def to_markdown(self) -> str:
        """Tables for ``docs/quality.md`` or the CLI."""
        lines = [
            "| kind | events | recall (warning+) | recall (critical) | bar recall | flagged "
            "| precision |",
            "|---|---|---|---|---|---|---|",
        ]
        for kind, r in self.per_kind.iterrows():
            lines.append(
                f"| {kind} | {int(r['events'])} | {_fmt(r['recall_warning'])} | "
                f"{_fmt(r['recall_critical'])} | {_fmt(r['bar_recall_warning'])} | "
                f"{int(r['flagged'])} | {_fmt(r['precision'])} |"
            )
        lines += [
            "",
            f"Bars: {self.bars}; clean: {self.clean_bars}; FP rate on clean bars: "
            f"{self.fp_rate_warning:.4f} at warning+, {self.fp_rate_critical:.4f} at critical; "
            f"overall precision at warning+: {self.precision:.3f}.",
            "",
            "| goal | measured | target | met |",
            "|---|---|---|---|",
        ]
        for _, g in self.goal_results().iterrows():
            digits = 4 if g["goal"].startswith("critical rate") else 3
            lines.append(
                f"| {g['goal']} | {_fmt(g['measured'], digits)} | {g['target']} | "
                f"{'yes' if g['met'] else '**no**'} |"
            )
        return "\n".join(lines) + "\n"


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x != x else f"{x:.{digits}f}"


def _per_ts(scores: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"level": severity_rank(scores["severity"]), "kind": scores["kind"].to_numpy()},
        index=scores.index.asi8,
    )
    frame = frame.sort_values("level", ascending=False, kind="stable")
    return frame[~frame.index.duplicated(keep="first")].sort_index()


def _events(labels: pd.DataFrame, present: np.ndarray) -> list[tuple[str, np.ndarray, int]]:
    """``(kind, evidence timestamps, labelled bars)`` per event."""
    out: list[tuple[str, np.ndarray, int]] = []
    ts = pd.DatetimeIndex(labels["ts"]).asi8
    kinds = labels["kind"].to_numpy()
    for kind in dict.fromkeys(kinds):
        stamps = np.unique(ts[kinds == kind])
        if kind in _GAP_KINDS:
            nxt = np.searchsorted(present, stamps, side="right")
            for after in np.unique(nxt):
                n = int((nxt == after).sum())
                ev = present[after : after + 1]
                out.append((kind, ev, n))
        elif kind in _RUN_KINDS:
            where = np.searchsorted(present, stamps)
            breaks = np.flatnonzero(np.diff(where) != 1) + 1
            for run in np.split(stamps, breaks):
                out.append((kind, run, len(run)))
        else:
            out += [(kind, np.array([s]), 1) for s in stamps]
    return out


def evaluate(
    cases: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]]
    | Iterable[tuple[pd.DataFrame, pd.DataFrame]],
) -> EvaluationReport:
    """Precision and recall per kind, and false-positive rates on clean bars.

    Args:
        cases: ``(scores, labels)`` per symbol (a mapping keyed by symbol, or pairs):
            ``scores`` from :func:`~quant_pipelines.quality.score_bars` (index ``ts``,
            columns ``severity`` and ``kind``), ``labels`` with columns ``ts`` and ``kind``.

    Returns:
        The report.
    """
    pairs = list(cases.values()) if isinstance(cases, Mapping) else list(cases)
    stats: dict[str, dict[str, float]] = {}
    n_bars = n_clean = fp_w = fp_c = flagged_all = flagged_ok = 0
    for scores, labels in pairs:
        per_ts = _per_ts(scores)
        present = per_ts.index.to_numpy()
        level = per_ts["level"].to_numpy()
        explained = np.zeros(len(present), dtype=bool)
        for kind, evidence, n_labels in _events(labels, present):
            at = np.searchsorted(present, evidence)
            ok = (at < len(present)) & (present[np.minimum(at, len(present) - 1)] == evidence)
            at = at[ok]
            explained[at] = True
            lv = level[at].max() if len(at) else 0
            bars_hit = (
                int((level[at] >= 1).sum()) if kind in _RUN_KINDS else int(lv >= 1) * n_labels
            )
            s = stats.setdefault(kind, dict.fromkeys(("events", "w", "c", "labels", "bar_w"), 0))
            s["events"] += 1
            s["w"] += int(lv >= 1)
            s["c"] += int(lv >= 2)
            s["labels"] += n_labels
            s["bar_w"] += bars_hit
        flagged = level >= 1
        kinds = per_ts["kind"].to_numpy()
        for kind in set(kinds[flagged]):
            mine = flagged & (kinds == kind)
            s = stats.setdefault(kind, dict.fromkeys(("events", "w", "c", "labels", "bar_w"), 0))
            s["flagged"] = s.get("flagged", 0) + int(mine.sum())
            s["flagged_ok"] = s.get("flagged_ok", 0) + int((mine & explained).sum())
        clean = ~explained
        n_bars += len(present)
        n_clean += int(clean.sum())
        fp_w += int((clean & (level >= 1)).sum())
        fp_c += int((clean & (level >= 2)).sum())
        flagged_all += int(flagged.sum())
        flagged_ok += int((flagged & explained).sum())
    rows = {}
    for kind, s in sorted(stats.items()):
        ev, fl = s["events"], s.get("flagged", 0)
        rows[kind] = {
            "events": int(ev),
            "recall_warning": s["w"] / ev if ev else np.nan,
            "recall_critical": s["c"] / ev if ev else np.nan,
            "bar_recall_warning": s["bar_w"] / s["labels"] if s["labels"] else np.nan,
            "flagged": int(fl),
            "precision": s.get("flagged_ok", 0) / fl if fl else np.nan,
        }
    per_kind = pd.DataFrame.from_dict(rows, orient="index")
    per_kind.index.name = "kind"
    return EvaluationReport(
        per_kind=per_kind,
        bars=n_bars,
        clean_bars=n_clean,
        fp_rate_warning=fp_w / n_clean if n_clean else np.nan,
        fp_rate_critical=fp_c / n_clean if n_clean else np.nan,
        precision=flagged_ok / flagged_all if flagged_all else np.nan,
    )
