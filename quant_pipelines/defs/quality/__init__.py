"""Data-quality sentinel wiring: scores beside the bars, models, thresholds, dashboard, alerts.

Modules: ``assets`` (with the automation conditions), ``checks``, ``jobs``, ``schedules``,
``sensors``; ``dg.load_from_defs_folder`` collects their top-level objects.
"""

from __future__ import annotations

import dagster as dg


def build_defs() -> dg.Definitions:
    """TEMPORARY, until ``definitions.py`` loads the defs folder: the area's objects.

    Binds the ``universe`` and ``alert_transports`` resources the old ``definitions.py`` lacks.
    The lead removes this function when ``definitions.py`` switches to ``load_from_defs_folder``.
    """
    from quant_pipelines.defs.quality import assets, jobs, schedules, sensors
    from quant_pipelines.defs.resources import UniverseResource, alert_transports

    return dg.Definitions(
        assets=[
            assets.equity_bar_anomaly_scores,
            assets.fx_bar_anomaly_scores,
            assets.crypto_bar_anomaly_scores,
            assets.prophet_models,
            assets.anomaly_thresholds,
            assets.anomaly_dashboard,
        ],
        jobs=[jobs.quality_models_job, jobs.anomaly_dashboard_job, jobs.alert_delivery_job],
        schedules=[schedules.weekly_quality_models_schedule],
        sensors=[sensors.alert_delivery_sensor],
        resources={"universe": UniverseResource(), "alert_transports": alert_transports()},
    )
