"""The promotion gate: a study's selected trial is promoted only if it passes every test.

Its thresholds default to the literature's usual bars: PBO <= 0.5, DSR >= 0.95, SPA p-value <=
0.10, and a holdout Sharpe ratio above buy-and-hold's on the same bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GateThresholds:
    """The promotion gate's thresholds (defaults from the literature's usual bars).

    Attributes:
        max_pbo: Highest probability of backtest overfitting allowed.
        min_dsr: Lowest deflated Sharpe ratio allowed.
        max_spa_pvalue: Highest SPA p-value allowed (data-snooping test against buy-and-hold).
        beat_buy_and_hold: The holdout Sharpe must exceed buy-and-hold's on the same bars.
    """

    max_pbo: float = 0.5
    min_dsr: float = 0.95
    max_spa_pvalue: float = 0.10
    beat_buy_and_hold: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


def num(x: Any) -> float | None:
    """``x`` as a finite float, or None (missing, not a number, NaN or infinite)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def gate(
    trial: Mapping[str, Any],
    stats: Mapping[str, Any] | None,
    thresholds: GateThresholds = GateThresholds(),
) -> tuple[bool, list[str], dict[str, float | None]]:
    """Whether a study's selected trial passes the promotion gate.

    Args:
        trial: The selected trial's document.
        stats: The study's ``statistics`` (see ``StudyStatistics.to_dict``), or None.
        thresholds: The gate.

    Returns:
        (promoted, reasons it failed, observed values: pbo, dsr, spa_pvalue, holdout_sharpe,
        buy_hold_sharpe).
    """
    s = stats or {}
    pbo = num((s.get("pbo") or {}).get("pbo"))
    spa = num((s.get("spa") or {}).get("pvalue"))
    dsr = num((s.get("deflated_sharpe") or {}).get(str(trial.get("number"))))
    if dsr is None:
        dsr = num(trial.get("deflated_sharpe"))
    hold = num((trial.get("oos_metrics") or {}).get("sharpe"))
    bh = num(s.get("buy_hold_holdout_sharpe"))
    observed = {
        "pbo": pbo,
        "dsr": dsr,
        "spa_pvalue": spa,
        "holdout_sharpe": hold,
        "buy_hold_sharpe": bh,
    }
    reasons = []
    if not s:
        reasons.append("no statistics for the study")
    if pbo is None:
        reasons.append(f"PBO unavailable ({s.get('pbo_reason') or 'not computed'})")
    elif pbo > thresholds.max_pbo:
        reasons.append(f"PBO {pbo:.2f} > {thresholds.max_pbo:.2f}")
    if dsr is None:
        reasons.append("DSR unavailable")
    elif dsr < thresholds.min_dsr:
        reasons.append(f"DSR {dsr:.2f} < {thresholds.min_dsr:.2f}")
    if spa is None:
        reasons.append(f"SPA p-value unavailable ({s.get('spa_reason') or 'not computed'})")
    elif spa > thresholds.max_spa_pvalue:
        reasons.append(f"SPA p {spa:.3f} > {thresholds.max_spa_pvalue:.2f}")
    if thresholds.beat_buy_and_hold:
        if hold is None or bh is None:
            reasons.append("no holdout to compare with buy-and-hold")
        elif not hold > bh:
            reasons.append(f"holdout Sharpe {hold:.2f} <= buy-and-hold {bh:.2f}")
    return not reasons, reasons, observed
