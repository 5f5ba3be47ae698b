"""Host patterns of the configuration (``AllowRedirectHosts``): ``host``, ``*.domain``, ``*``.

Pure; shared by the configuration's checks and the health checks' redirect policy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

__all__ = ["host_matches", "host_pattern_problem"]

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` is named by one of ``patterns`` (``*``, ``*.domain``, ``host``)."""
    host = host.rstrip(".").lower()
    for pattern in patterns:
        pattern = pattern.rstrip(".").lower().strip("[]")
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def host_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable ``AllowRedirectHosts`` entry, or ``None``."""
    text = pattern.rstrip(".").lower()
    if text == "*":
        return None
    name = text[2:] if text.startswith("*.") else text
    try:
        ipaddress.ip_address(name.strip("[]"))
        return None
    except ValueError:
        pass
    if name and len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split(".")):
        return None
    return "is not a host name, *.domain, an IP address or *"
