"""The one ``dg.Definitions`` of the project: loads every module under ``defs/``, nothing else.

``dg check defs``, ``dg list defs`` and ``dg dev`` find the folder through ``[tool.dg]`` in
``pyproject.toml``; ``dagster dev -m quant_pipelines.definitions`` loads ``defs`` below.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

#: The repository root: ``pyproject.toml`` (``[tool.dg]``) and the ``quant_pipelines`` package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_definitions() -> dg.Definitions:
    """Every definition under ``quant_pipelines/defs/``; resources come from ``resources.py``."""
    return dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)


defs = build_definitions()


def parallel_study_job_def() -> dg.JobDefinition:
    """``parallel_study_job`` resolved from fresh Definitions (a ``dg.reconstructable`` target)."""
    return build_definitions().resolve_job_def("parallel_study_job")
