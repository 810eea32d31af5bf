"""The CLI starts quickly: its light commands do not load the research stack.

Every analyst command (``alerts list``, ``api-keys``, ``mongo status``) is a new process;
loading arch, numba and the backtester cost about 4 s per call before the optimizer
package imported its names on first use.
"""

from __future__ import annotations

import subprocess
import sys

#: (Optuna itself is light, 0.1 s, and the storage package holds its journal backend.)
HEAVY = ("arch", "numba", "torch", "prophet", "dagster", "sklearn", "stable_baselines3")

_PROBE = """
import sys
from quant_pipelines.cli import main
try:
    main(["alerts", "--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print("LOADED:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def test_a_light_command_loads_none_of_the_research_stack() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "usage:" in out  # the command ran
    loaded = out.strip().splitlines()[-1]
    assert loaded == "LOADED:", f"loaded by `quant-pipelines alerts --help`: {loaded}"


def test_the_optimizer_names_still_import_from_the_package() -> None:
    import quant_pipelines.optimizer as optimizer

    for name in optimizer.__all__:
        assert getattr(optimizer, name) is not None, name
    # A name that is also a submodule stays the function once the submodule is imported.
    import quant_pipelines.optimizer.gate  # noqa: F401

    assert callable(optimizer.gate) and not isinstance(optimizer.gate, type(optimizer))
    assert "run_study" in dir(optimizer)
