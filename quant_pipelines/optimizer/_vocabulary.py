"""The optimizer's progress vocabulary, importable without the optimizer (``storage`` reads it).

Re-exported by :mod:`quant_pipelines.optimizer.progress`.
"""

from __future__ import annotations

DONE_STATES = frozenset({"COMPLETE", "PRUNED"})
#: The one progress vocabulary: written by the runner's callback into the study document
#: (``studies.progress``) and read as-is by the HTTP API and the request lifecycle. ``done`` counts
#: complete and pruned trials across every run of the study; ``total`` is its budget; ``eta_s``
#: is None until a trial of this run is done; ``failed`` counts failed trials.
PROGRESS_FIELDS: tuple[str, ...] = (
    "done",
    "total",
    "complete",
    "pruned",
    "failed",
    "running",
    "waiting",
    "best_value",
    "best_params",
    "trials_per_hour",
    "eta_s",
    "elapsed_s",
    "updated_at",
)

__all__ = ["DONE_STATES", "PROGRESS_FIELDS"]
