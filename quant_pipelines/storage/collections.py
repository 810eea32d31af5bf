"""Collection names and their unique keys: the MongoDB data model contract (ARCHITECTURE.md)."""

from __future__ import annotations

BARS = "bars"
INGEST_BATCHES = "ingest_batches"
ANOMALIES = "anomalies"
ALERT_OUTBOX = "alert_outbox"
STUDIES = "studies"
TRIALS = "trials"
OPTUNA_JOURNAL = "optuna_journal"
OPTIMIZATION_REQUESTS = "optimization_requests"
RL_POLICIES = "rl_policies"
KPIS = "kpis"
API_KEYS = "api_keys"

#: The natural (unique) key of every collection, in index order.
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    BARS: ("symbol", "ts"),
    INGEST_BATCHES: ("batch_id",),
    ANOMALIES: ("symbol", "ts", "detector"),
    ALERT_OUTBOX: ("idempotency_key",),
    STUDIES: ("study_name",),
    TRIALS: ("study_name", "number"),
    OPTUNA_JOURNAL: ("log_number",),
    OPTIMIZATION_REQUESTS: ("request_id",),
    RL_POLICIES: ("policy_id",),
    KPIS: ("kpi", "period"),
    API_KEYS: ("key_hash",),  # also unique on "name" (indexes.py)
}

ALL_COLLECTIONS: tuple[str, ...] = tuple(UNIQUE_KEYS)
