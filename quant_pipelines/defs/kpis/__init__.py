"""The KPI report area: ``assets.py`` (kpi_report, refreshed daily by an on-cron condition)."""
