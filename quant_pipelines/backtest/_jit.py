"""The compile options shared by the backtest's numba code."""

from __future__ import annotations

#: Machine code cached in ``__pycache__``; ``fastmath`` off, so IEEE operations and their
#: order are kept exactly; ``error_model="numpy"`` drops Python's divide-by-zero checks (no
#: division here can raise).
JIT_OPTIONS: dict[str, bool | str] = {"cache": True, "nogil": True, "error_model": "numpy"}
