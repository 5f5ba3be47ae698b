"""Mirrorbits for Python: a geographical download redirector built on Twisted."""

import platform
import sys

from mirrorbits._version import __version__

__all__ = ["__version__", "version_info", "version_string"]


def version_string() -> str:
    """The short version text used in the ``Server`` header and User-Agents."""
    return "v" + __version__.public()


def version_info() -> dict[str, str]:
    """What ``mirrorbits-ctl version`` prints for a program (client or daemon)."""
    return {
        "Version": version_string(),
        "Build": "python",
        "PythonVersion": platform.python_version(),
        "OperatingSystem": sys.platform,
        "Architecture": platform.machine(),
    }
