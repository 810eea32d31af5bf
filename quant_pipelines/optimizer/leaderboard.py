"""The leaderboard: trials ranked within one objective on validation, and the promotion gate.

Pure functions of the ``studies`` and ``trials`` documents (plain dicts):

* rows are grouped by objective; objectives are never compared with each other;
* within an objective the rank key is ``validation`` by default (the objective averaged over
  the validation paths inside the in-sample period), or ``deflated_sharpe``, ``in_sample`` or
  ``holdout`` (selection on the holdout, labelled so: it spends the holdout and promotes
  nothing);
* near-identical parameter sets of one study show once: the best of each cluster, with the
  cluster's size;
* each study selects one trial, its best by the rank key, and the gate promotes it only if the
  study's PBO, its DSR, the study's SPA p-value and its holdout Sharpe against buy-and-hold all
  pass. A selected trial that fails promotes nothing: the next one is never tried in its place,
  since that would select on the holdout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from quant_pipelines.optimizer.gate import GateThresholds, gate, num

#: Rank keys.
RANK_KEYS: tuple[str, ...] = ("validation", "deflated_sharpe", "in_sample", "holdout")
#: Normalised distance under which two parameter sets of one study are one row.
CLUSTER_TOLERANCE = 0.02


def check_rank_by(rank_by: str) -> str:
    """``rank_by`` itself, or ValueError naming the allowed keys."""
    if rank_by not in RANK_KEYS:
        raise ValueError(f"unknown rank_by {rank_by!r}; allowed: {', '.join(RANK_KEYS)}")
    return rank_by


def format_params(params: Mapping[str, Any]) -> str:
    """Readable parameters: ``fast=45, slow=269`` (floats to 4 significant digits)."""
    parts = []
    for k, v in params.items():
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        parts.append(f"{k}={text}")
    return ", ".join(parts)


def _rank_value(trial: Mapping[str, Any], stats: Mapping[str, Any], rank_by: str) -> float | None:
    if rank_by == "deflated_sharpe":
        v = (stats.get("deflated_sharpe") or {}).get(str(trial.get("number")))
        return num(v if v is not None else trial.get("deflated_sharpe"))
    if rank_by == "validation":
        v = num(trial.get("validation"))
        return v if v is not None else num(trial.get("in_sample", trial.get("value")))
    if rank_by == "in_sample":
        return num(trial.get("in_sample", trial.get("value")))
    return num(trial.get("holdout"))


def _scales(space: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"__log__": set()}
    for p in (space or {}).get("params", []):
        if p.get("type") in ("int", "float"):
            lo, hi = float(p["low"]), float(p["high"])
            if p.get("log") and lo > 0:
                out[p["name"]] = (math.log(lo), math.log(hi))
                out["__log__"].add(p["name"])
            else:
                out[p["name"]] = (lo, hi)
        else:
            out[p["name"]] = None
    return out


def _distance(a: Mapping[str, Any], b: Mapping[str, Any], scales: Mapping[str, Any]) -> float:
    """Largest normalised coordinate difference (categoricals: 0 equal, 1 different)."""
    logs = scales.get("__log__") or set()
    worst = 0.0
    for k in set(a) | set(b):
        x, y = a.get(k), b.get(k)
        scale = scales.get(k)
        if scale is None or not isinstance(x, int | float) or not isinstance(y, int | float):
            worst = max(worst, 0.0 if x == y else 1.0)
            continue
        lo, hi = scale
        if k in logs:
            x, y = math.log(max(float(x), 1e-300)), math.log(max(float(y), 1e-300))
        width = (hi - lo) or 1.0
        worst = max(worst, abs(float(x) - float(y)) / width)
    return worst


def _clustered(
    rows: list[dict[str, Any]], scales: Mapping[str, Any], tolerance: float
) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for row in rows:  # best first
        twin = next(
            (k for k in kept if _distance(k["_params"], row["_params"], scales) <= tolerance),
            None,
        )
        if twin is None:
            row["cluster_size"] = 1
            kept.append(row)
        else:
            twin["cluster_size"] += 1
    return kept


def _study_rows(
    studies: Sequence[Mapping[str, Any]],
    trials: Sequence[Mapping[str, Any]],
    *,
    objective: str | None,
    rank_by: str,
    thresholds: GateThresholds,
) -> list[tuple[Mapping[str, Any], list[dict[str, Any]]]]:
    """Per study: its rows, best first, the first one selected and gated."""
    check_rank_by(rank_by)
    by_study: dict[str, list[Mapping[str, Any]]] = {}
    for t in trials:
        if t.get("state") == "COMPLETE" and t.get("feasible", True):
            by_study.setdefault(t["study_name"], []).append(t)
    out = []
    for study in studies:
        if objective is not None and study.get("objective") != objective:
            continue
        stats = study.get("statistics") or {}
        rows = []
        for t in by_study.get(study["study_name"], []):
            value = _rank_value(t, stats, rank_by)
            if value is not None:
                rows.append(_row(study, t, stats, value, rank_by))
        if rows:
            rows.sort(key=lambda r: (-r["rank_value"], r["trial"]))
            _decide(rows[0], rows[1:], stats, thresholds, rank_by)
            out.append((study, rows))
    return out


def select_trials(
    studies: Sequence[Mapping[str, Any]],
    trials: Sequence[Mapping[str, Any]],
    *,
    rank_by: str = "validation",
    thresholds: GateThresholds = GateThresholds(),
) -> list[dict[str, Any]]:
    """Each study's selected trial and the gate's decision on it.

    Returns:
        One dict per study with trials: ``study``, ``trial``, ``objective_name``,
        ``promoted``, ``reason``, ``rank_by``, ``observed`` (pbo, dsr, spa_pvalue,
        holdout_sharpe, buy_hold_sharpe) and ``thresholds``.
    """
    out = []
    for study, rows in _study_rows(
        studies, trials, objective=None, rank_by=rank_by, thresholds=thresholds
    ):
        top = rows[0]
        out.append(
            {
                "study": study["study_name"],
                "trial": top["trial"],
                "objective_name": top["objective_name"],
                "promoted": top["promoted"],
                "reason": top["reason"],
                "rank_by": rank_by,
                "observed": {
                    "pbo": top["pbo"],
                    "dsr": top["deflated_sharpe"],
                    "spa_pvalue": top["spa_pvalue"],
                    "holdout_sharpe": top["holdout_sharpe"],
                    "buy_hold_sharpe": top["buy_hold_sharpe"],
                },
                "thresholds": thresholds.to_dict(),
            }
        )
    return out


def rank_leaderboard(
    studies: Sequence[Mapping[str, Any]],
    trials: Sequence[Mapping[str, Any]],
    *,
    objective: str | None = None,
    rank_by: str = "validation",
    thresholds: GateThresholds = GateThresholds(),
    limit: int = 20,
    cluster_tolerance: float = CLUSTER_TOLERANCE,
) -> list[dict[str, Any]]:
    """The leaderboard rows (module doc), grouped by objective, ranked within each.

    Args:
        studies: ``studies`` documents (with ``statistics``, ``space``, ``objective``).
        trials: ``trials`` documents of those studies.
        objective: Only this objective's group (None: every group).
        rank_by: One of :data:`RANK_KEYS`.
        thresholds: The promotion gate.
        limit: Rows per objective.
        cluster_tolerance: Normalised parameter distance under which trials are one row.

    Returns:
        Rows sorted by objective then rank: ``objective_name``, ``rank``, ``study``, ``trial``,
        ``strategy``, ``asset_class``, ``portfolio`` (a portfolio study), ``symbols``,
        ``params`` (readable), ``param_values``, ``in_sample``,
        ``validation``, ``holdout``, ``rank_value``, ``holdout_sharpe``, ``buy_hold_sharpe``,
        ``deflated_sharpe``, ``pbo``, ``spa_pvalue``, ``max_drawdown``, ``n_trades``,
        ``selected``, ``promoted``, ``reason``, ``cluster_size``, ``rank_by``,
        ``selection_on_holdout``.

    Raises:
        ValueError: For an unknown ``rank_by``.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for study, rows in _study_rows(
        studies, trials, objective=objective, rank_by=rank_by, thresholds=thresholds
    ):
        obj = study.get("objective") or "unknown"
        kept = _clustered(rows, _scales(study.get("space")), cluster_tolerance)
        groups.setdefault(obj, []).extend(kept)
    out = []
    for obj in sorted(groups):
        ranked = sorted(groups[obj], key=lambda r: (-r["rank_value"], r["study"], r["trial"]))
        for rank, row in enumerate(ranked[: max(int(limit), 0)], start=1):
            row.pop("_params", None)
            out.append({"rank": rank, **row})
    return out


def _row(
    study: Mapping[str, Any],
    t: Mapping[str, Any],
    stats: Mapping[str, Any],
    value: float,
    rank_by: str,
) -> dict[str, Any]:
    is_m = t.get("is_metrics") or {}
    oos = t.get("oos_metrics") or {}
    dsr = (stats.get("deflated_sharpe") or {}).get(str(t["number"]), t.get("deflated_sharpe"))
    return {
        "objective_name": study.get("objective"),
        "study": study["study_name"],
        "trial": int(t["number"]),
        "strategy": study.get("strategy"),
        "asset_class": study.get("asset_class"),
        "portfolio": bool(study.get("portfolio", False)),
        "symbols": list(study.get("symbols") or []),
        "params": format_params(t.get("params") or {}),
        "param_values": dict(t.get("params") or {}),
        "_params": dict(t.get("params") or {}),
        "in_sample": num(t.get("in_sample", t.get("value"))),
        "validation": num(t.get("validation")),
        "holdout": num(t.get("holdout")),
        "rank_value": value,
        "holdout_sharpe": num(oos.get("sharpe")),
        "buy_hold_sharpe": num(stats.get("buy_hold_holdout_sharpe")),
        "deflated_sharpe": num(dsr),
        "pbo": num((stats.get("pbo") or {}).get("pbo")),
        "spa_pvalue": num((stats.get("spa") or {}).get("pvalue")),
        "max_drawdown": num(is_m.get("max_drawdown")),
        "n_trades": num(is_m.get("n_trades")),
        "rank_by": rank_by,
        "selection_on_holdout": rank_by == "holdout",
    }


def _decide(
    selected: dict[str, Any],
    others: list[dict[str, Any]],
    stats: Mapping[str, Any],
    thresholds: GateThresholds,
    rank_by: str,
) -> None:
    selected["selected"] = True
    if rank_by == "holdout":
        selected["promoted"] = False
        selected["reason"] = (
            "selection on the holdout: the holdout is spent; promote from a validation ranking"
        )
    else:
        doc = {
            "number": selected["trial"],
            "deflated_sharpe": selected["deflated_sharpe"],
            "oos_metrics": {"sharpe": selected["holdout_sharpe"]},
        }
        ok, reasons, _ = gate(doc, stats, thresholds)
        selected["promoted"] = ok
        selected["reason"] = "passes every test" if ok else "; ".join(reasons)
    for row in others:
        row["selected"] = False
        row["promoted"] = False
        row["reason"] = f"not selected: trial {selected['trial']} is the study's pick by {rank_by}"
