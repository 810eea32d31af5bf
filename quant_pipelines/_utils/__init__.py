"""Small helpers every layer may import (domain packages, storage, alerts, api, services, defs).

Only the standard library, numpy and pandas: nothing here imports another quant_pipelines
package, so importing it can never break the boundaries of ``docs/architecture.md``.

* :mod:`~quant_pipelines._utils.time` — timestamps as timezone-aware UTC;
* :mod:`~quant_pipelines._utils.jsonsafe` — values made safe for a strict JSON encoder.
"""

from __future__ import annotations
