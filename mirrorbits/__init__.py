"""Mirrorbits for Python: a geographical download redirector built on Twisted."""

from mirrorbits._version import __version__

__all__ = ["__version__", "version_string"]


def version_string() -> str:
    """The short version text used in the ``Server`` header and User-Agents."""
    return "v" + __version__.public()
