"""quant_pipelines: a Dagster project that automates a quant research loop."""

from __future__ import annotations

__version__ = "0.1.0"
