"""``python -m quant_pipelines.cli``: the same as the ``quant-pipelines`` console script."""

from __future__ import annotations

from quant_pipelines.cli import main

raise SystemExit(main())
