"""Use cases as plain functions: each takes the repositories (``storage.Repositories``) and
domain inputs and returns a report dataclass. Dagster assets, sensors and the CLI call these;
they never import Dagster or the HTTP API.

| use case | function | asset / sensor |
|---|---|---|
| ingestion | :func:`ingest_partition` | ``market_bars/<class>`` |
| scoring | :func:`score_partition` | ``bar_anomaly_scores/<class>`` |
| model refit | :func:`refit_quality_models` | ``prophet_models`` |
| thresholds | :func:`calibrate_and_store` (:func:`recalibrate`) | ``anomaly_thresholds`` |
| dashboard | :func:`anomaly_dashboard` | ``anomaly_dashboard`` |
| alert delivery | :func:`deliver_alerts` | ``alert_delivery_sensor`` |
| studies | :func:`run_requested_study` | ``optimization_study`` |
| leaderboard | :func:`build_leaderboard`, :func:`check_promotions` | ``optimization_leaderboard`` |
| RL | :func:`train_policy`, :func:`replay_policy` | ``rl_policy``, ``rl_policy_replay`` |
| KPIs | :func:`kpi_report` | ``kpi_report`` |

Names are imported on first use, so importing one use case does not load the others (the RL
ones pull in torch).
"""

from __future__ import annotations

from quant_pipelines._utils.lazy import lazy_exports

_WHERE = {
    "IngestReport": ".market_data",
    "ingest_partition": ".market_data",
    "ScoringReport": ".quality",
    "DashboardReport": ".quality",
    "score_partition": ".quality",
    "anomaly_dashboard": ".quality",
    "deliver_alerts": ".quality",
    "CalibrationReport": ".calibration",
    "RefitReport": ".calibration",
    "recalibrate": ".calibration",
    "calibrate_and_store": ".calibration",
    "refit_quality_models": ".calibration",
    "StudySpec": ".optimization",
    "StudyReport": ".optimization",
    "run_requested_study": ".optimization",
    "LeaderboardReport": ".leaderboard",
    "PromotionCheck": ".leaderboard",
    "build_leaderboard": ".leaderboard",
    "check_promotions": ".leaderboard",
    "promoted_strategies": ".leaderboard",
    "TrainingReport": ".rl",
    "ReplayReport": ".rl",
    "train_policy": ".rl",
    "replay_policy": ".rl",
    "KpiReport": ".kpis",
    "kpi_report": ".kpis",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)
