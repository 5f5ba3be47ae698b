"""The live configuration: loaded once, replaced atomically on reload.

Components read ``holder.current`` when they need a value (so changes are
"live"), or subscribe to be told after each successful reload.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field

from mirrorbits.config import Config, ConfigError, load_config, with_repository
from mirrorbits.logs import Logger


@define(eq=False)
class ConfigHolder:
    """Holds the running :class:`Config` and reloads it from ``path``.

    ``repository``: the ``--repository`` option, which replaces the file's ``Repository``
    at every load.
    """

    current: Config
    path: str | None = None
    repository: str | None = None
    _subscribers: list[Callable[[Config, Config], None]] = field(factory=list)
    log = Logger()

    def subscribe(self, callback: Callable[[Config, Config], None]) -> None:
        """Call ``callback(old, new)`` after every successful reload."""
        self._subscribers.append(callback)

    def reload(self) -> list[str]:
        """Re-read the file; on any error keep the running config and raise ConfigError.

        Returns the warnings of the new file (unknown keys...).
        """
        if self.path is None:
            raise ConfigError("no configuration file to reload (started on the embedded default)")
        new, warnings = load_config(self.path)
        if self.repository is not None:
            new = with_repository(new, self.repository)
        old, self.current = self.current, new
        for callback in list(self._subscribers):
            try:
                callback(old, new)
            except Exception:
                self.log.failure("applying the reloaded configuration failed")
        return warnings
