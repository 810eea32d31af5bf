"""One anomaly in context: its bars around the flagged one, class peers, scores, verdicts.

Reads ``anomalies``, ``bars`` (the symbol's window and each class peer on the same dates, all
bounded date ranges on the (symbol, ts) index) and the latest ``quality_thresholds``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

from quant_pipelines._utils.time import utc
from quant_pipelines.api.console._charts import ChartData
from quant_pipelines.api.console._svg import finite
from quant_pipelines.marketdata import Universe
from quant_pipelines.storage.anomaly_workflow import ACKNOWLEDGED, OPEN
from quant_pipelines.storage.collections import BARS
from quant_pipelines.storage.quality import latest_thresholds

#: Sessions shown around the flagged bar.
WINDOW = 60
#: Sessions after the flagged bar, at most (the rest of the window precedes it).
AFTER = 15
#: ``quality.DEFAULT_THRESHOLDS``, used until a calibration is stored. Spelled out because
#: importing the quality package costs the API seconds of start-up; a test pins the two.
DEFAULT_THRESHOLDS = {
    "iforest_warning": 0.72,
    "iforest_critical": 0.795,
    "prophet_price_warning": 1.28,
    "prophet_price_critical": 1.78,
    "prophet_volume_warning": 0.42,
    "prophet_volume_critical": 0.92,
}
#: Analyst actions allowed from each status (the buttons shown; the workflow enforces them).
ACTIONS_FROM = {
    OPEN: ("ack", "resolve", "false_positive"),
    ACKNOWLEDGED: ("resolve", "false_positive"),
}
_BAR_FIELDS = {"_id": 0, "ts": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1}
_BAR_FIELDS.update(valid=1, quality=1)


@dataclass(frozen=True)
class AnomalyView:
    """What the anomaly page shows.

    Attributes:
        doc: The anomaly document (``id`` and ``status`` filled in).
        asset_class: The symbol's class ("" when it is not in the universe).
        chart: The chart's data.
        thresholds: The thresholds in force and ``version``.
        scores: Rows ``(detector, score, warning, critical, flagged)``.
        rules: Rules that fired on the bar.
        flags: Every flag of the bar (rules and detectors over their warning threshold).
        moves: Symbol -> its close-to-close move into the flagged session (None: no bar).
        actions: Actions the workflow allows from the current status.
    """

    doc: dict[str, Any]
    asset_class: str
    chart: ChartData
    thresholds: dict[str, Any]
    scores: list[tuple[str, float | None, str, str, bool]]
    rules: list[str]
    flags: list[str]
    moves: dict[str, float | None]
    actions: tuple[str, ...]


def _days_per_session(universe: Universe, symbol: str) -> float:
    """Calendar days per session, generously: 1 around the clock, 1.5 on exchange calendars."""
    calendar = universe.get(symbol).calendar if symbol in universe else ""
    return 1.0 if calendar == "24/7" else 1.5


def _window(
    db: Database, symbol: str, ts: dt.datetime, size: int, days_per_session: float
) -> list[dict[str, Any]]:
    """Up to ``size`` bars around ``ts``: at most :data:`AFTER` after it, the rest before.

    One query over a date range sized from the calendar (bounded, so its cost does not grow
    with the symbol's history); a second one only when the history before ``ts`` is short.
    """
    coll = db[BARS]
    lo = ts - dt.timedelta(days=math.ceil((size - 1) * days_per_session) + 5)
    hi = ts + dt.timedelta(days=math.ceil(AFTER * days_per_session) + 5)
    rows = list(
        coll.find({"symbol": symbol, "ts": {"$gte": lo, "$lte": hi}}, _BAR_FIELDS).sort("ts", 1)
    )
    before = [r for r in rows if utc(r["ts"]) < ts]
    after = [r for r in rows if utc(r["ts"]) >= ts]
    if len(before) + len(after) < size and len(after) > AFTER:  # little history before ts
        more = coll.find({"symbol": symbol, "ts": {"$gt": hi}}, _BAR_FIELDS).sort("ts", 1)
        after += list(more.limit(size - len(before) - len(after)))
    n_after = min(len(after), max(AFTER + 1, size - len(before)))
    n_before = min(len(before), size - n_after)
    return [*before[len(before) - n_before :], *after[:n_after]]


def _normalised(closes: Mapping[dt.date, float], days: list[dt.date]) -> list[float | None]:
    base = next((closes[d] for d in days if closes.get(d)), None)
    if not base:
        return [None] * len(days)
    return [100.0 * closes[d] / base if closes.get(d) else None for d in days]


def _peers(
    db: Database, peers: list[str], first: dt.datetime, last: dt.datetime
) -> dict[str, dict[dt.date, float]]:
    """Valid closes of each peer between ``first`` and ``last``, by UTC date.

    One equality query per peer: the (symbol, ts) index then bounds each scan (an ``$in`` or
    ``$or`` over symbols is planned as a collection scan by the embedded server).
    """
    out: dict[str, dict[dt.date, float]] = {}
    for peer in peers:
        query = {"symbol": peer, "ts": {"$gte": first, "$lte": last}}
        closes = out.setdefault(peer, {})
        for bar in db[BARS].find(query, {"_id": 0, "ts": 1, "close": 1, "valid": 1}):
            close = finite(bar.get("close"))
            if close is not None and close > 0 and bar.get("valid") is not False:
                closes[utc(bar["ts"]).date()] = close
    return out


def _move(closes: Mapping[dt.date, float], days: list[dt.date], at: int | None) -> float | None:
    if at is None or at == 0:
        return None
    now, before = closes.get(days[at]), closes.get(days[at - 1])
    return now / before - 1.0 if now and before else None


def _scores(doc: Mapping[str, Any], quality: Mapping[str, Any], t: Mapping[str, Any]) -> list:
    """Rows (detector, score, warning, critical, flagged): ``flagged`` is what the detector
    said when the bar was scored (its flag); without a scored bar, the score against today's
    warning threshold (for Prophet, the lower of the price and volume ones)."""
    iforest = finite(doc.get("iforest", quality.get("iforest")))
    prophet = finite(doc.get("prophet", quality.get("prophet")))
    flags = set(quality.get("flags") or [])
    scored = "flags" in quality

    def flagged(names: set[str], score: float | None, warning: float) -> bool:
        if scored:
            return bool(flags & names)
        return score is not None and score >= warning

    prophet_warning = min(t["prophet_price_warning"], t["prophet_volume_warning"])
    price = f"price {t['prophet_price_warning']:.3g} / volume {t['prophet_volume_warning']:.3g}"
    crit = f"price {t['prophet_price_critical']:.3g} / volume {t['prophet_volume_critical']:.3g}"
    return [
        (
            "Isolation Forest",
            iforest,
            f"{t['iforest_warning']:.3g}",
            f"{t['iforest_critical']:.3g}",
            flagged({"iforest"}, iforest, t["iforest_warning"]),
        ),
        (
            "Prophet distance",
            prophet,
            price,
            crit,
            flagged({"prophet_price", "prophet_volume"}, prophet, prophet_warning),
        ),
    ]


def load_anomaly(
    db: Database, universe: Universe, doc: dict[str, Any], *, window: int = WINDOW
) -> AnomalyView:
    """Everything the anomaly page shows about ``doc``.

    Args:
        db: The project database.
        universe: Gives the symbol's asset class and its peers.
        doc: The anomaly (from :func:`find_anomaly`).
        window: Sessions shown around the flagged bar.

    Returns:
        The view.
    """
    symbol, ts = str(doc["symbol"]), utc(doc["ts"])
    bars = _window(db, symbol, ts, window, _days_per_session(universe, symbol))
    days = [utc(b["ts"]).date() for b in bars]
    flagged = next((i for i, b in enumerate(bars) if utc(b["ts"]) == ts), None)
    asset_class = universe.get(symbol).asset_class if symbol in universe else ""
    peer_names = (
        [s.name for s in universe.by_asset_class(asset_class) if s.name != symbol]
        if asset_class
        else []
    )
    closes = {
        symbol: {d: c for d, b in zip(days, bars, strict=True) if (c := finite(b.get("close")))}
    }
    if bars:
        closes.update(_peers(db, peer_names, utc(bars[0]["ts"]), utc(bars[-1]["ts"])))
    stored = latest_thresholds(db)
    thresholds = {**DEFAULT_THRESHOLDS, "version": "default (not calibrated yet)"}
    if stored:
        thresholds.update(
            {k: v for k, v in stored.items() if k in DEFAULT_THRESHOLDS or k == "version"}
        )
    quality = (bars[flagged].get("quality") or {}) if flagged is not None else {}
    chart = ChartData(
        symbol=symbol,
        dates=[utc(b["ts"]) for b in bars],
        open=[b.get("open") for b in bars],
        high=[b.get("high") for b in bars],
        low=[b.get("low") for b in bars],
        close=[b.get("close") for b in bars],
        volume=[b.get("volume") for b in bars],
        flagged=flagged,
        iforest=[(b.get("quality") or {}).get("iforest") for b in bars],
        prophet=[(b.get("quality") or {}).get("prophet") for b in bars],
        normalised={name: _normalised(c, days) for name, c in closes.items() if c},
        thresholds={k: float(v) for k, v in thresholds.items() if k in DEFAULT_THRESHOLDS},
    )
    rules = list(dict.fromkeys([*(doc.get("rules") or []), *(quality.get("rules") or [])]))
    if not rules and str(doc.get("detector", "")).startswith("validation:"):
        rules = [str(doc.get("rule") or doc["detector"].split(":", 1)[1])]
    return AnomalyView(
        doc=doc,
        asset_class=asset_class,
        chart=chart,
        thresholds=thresholds,
        scores=_scores(doc, quality, thresholds),
        rules=rules,
        flags=sorted(set(quality.get("flags") or [])),
        moves={name: _move(c, days, flagged) for name, c in closes.items()},
        actions=ACTIONS_FROM.get(doc["status"], ()),
    )
