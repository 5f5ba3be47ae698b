"""Runtime logging: a ``Logger`` whose debug events cost nothing unless ``--debug`` is on."""

from __future__ import annotations

from twisted.logger import Logger as _TwistedLogger
from twisted.logger import LogLevel

_debug_enabled = False


def set_debug(enabled: bool) -> None:
    """Switch debug messages on or off for every mirrorbits logger."""
    global _debug_enabled
    _debug_enabled = enabled


def debug_enabled() -> bool:
    return _debug_enabled


class Logger(_TwistedLogger):
    """twisted.logger.Logger that drops debug events before they are built."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if level is LogLevel.debug and not _debug_enabled:
            return
        super().emit(level, format, **kwargs)
