"""Refusing to bind a local service beyond loopback unless the operator means it.

Shared by ``quant-pipelines api`` and the Optuna dashboard command: a service that listens on
a public interface is reachable by anyone who can route to the machine, so it must have
authentication configured *and* the operator must say so explicitly.
"""

from __future__ import annotations

import ipaddress

#: The flag that acknowledges a public bind.
PUBLIC_FLAG = "--i-know-this-is-public"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on the loopback interface.

    ``0.0.0.0``, ``::`` and the empty string bind every interface and are not loopback; a
    hostname other than ``localhost`` is treated as public (it may resolve anywhere).

    Args:
        host: The address or name given to ``--host``.

    Returns:
        True for ``127.0.0.0/8``, ``::1``, ``[::1]`` and ``localhost``.
    """
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, auth_configured: bool, public_ok: bool) -> None:
    """Refuses a non-loopback bind unless authentication is configured and acknowledged.

    Args:
        host: The address the service would listen on.
        auth_configured: Whether the service will require credentials (e.g. at least one
            non-revoked API key exists).
        public_ok: Whether the operator passed ``--i-know-this-is-public``.

    Raises:
        SystemExit: With a message naming what is missing, when ``host`` is not loopback and
            either condition does not hold.
    """
    if is_loopback(host):
        return
    missing = []
    if not auth_configured:
        missing.append("authentication is not configured")
    if not public_ok:
        missing.append(f"{PUBLIC_FLAG} was not given")
    if missing:
        raise SystemExit(
            f"refusing to listen on {host!r}, which is not a loopback address: "
            + " and ".join(missing)
            + f". Binding beyond loopback requires authentication to be configured AND "
            f"{PUBLIC_FLAG}; use --host 127.0.0.1 to stay local."
        )
