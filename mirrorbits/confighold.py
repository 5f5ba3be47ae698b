"""The live configuration: loaded once, replaced atomically on reload.

Components read ``holder.current`` when they need a value (so changes are
"live"), or subscribe to be told after each successful reload.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field

from mirrorbits.config import Config, ConfigError, load_config
from mirrorbits.logs import Logger

#: What a refused reload says, in the daemon's log and in ``mirrorbits-ctl reload``'s output.
RELOAD_REFUSED = "Reload refused, the daemon keeps its running configuration"


@define(eq=False)
class ConfigHolder:
    """Holds the running :class:`Config` and reloads it from ``path``.

    ``repository``: the ``--repository`` option, which replaces the file's ``Repository``
    at every load.
    """

    current: Config
    path: str | None = None
    repository: str | None = None
    base: str | None = None  # where relative paths start (the daemon's start directory)
    # What the listeners, the workers and the control's TLS were set up from: what a reload
    # cannot change is compared with it, not with the previous reload's file.
    started: Config | None = None
    _subscribers: list[Callable[[Config, Config], None]] = field(factory=list)
    log = Logger()

    def __attrs_post_init__(self) -> None:
        if self.started is None:
            self.started = self.current

    def subscribe(self, callback: Callable[[Config, Config], None]) -> None:
        """Call ``callback(old, new)`` after every successful reload."""
        self._subscribers.append(callback)

    def reload(self) -> list[str]:
        """Re-read the file; on any error keep the running config and raise ConfigError.

        Returns the warnings of the new file (unknown keys...), then what the reload
        cannot apply (:func:`restart_notices`).
        """
        if self.path is None:
            raise ConfigError("no configuration file to reload (started on the embedded default)")
        new, warnings = load_config(self.path, self.base, self.repository)
        old, self.current = self.current, new
        for callback in list(self._subscribers):
            try:
                callback(old, new)
            except Exception:
                self.log.failure("applying the reloaded configuration failed")
        assert self.started is not None
        return warnings + restart_notices(self.started, new)


def restart_notices(old: Config, new: Config) -> list[str]:
    """The settings of ``new`` that differ from the running ``old`` and that only a restart
    (or an upgrade) applies, one line each: returned with a reload's warnings, so that
    ``mirrorbits-ctl reload`` says so too."""
    notices = []
    for key, before, after in (
            ("ListenAddress", old.listen_address, new.listen_address),
            ("RPCListenAddress", old.rpc_listen_address, new.rpc_listen_address),
            ("MetricsListenAddress", old.metrics_listen_address, new.metrics_listen_address)):
        if before != after:
            notices.append(f"{key} changed ({_shown(before)} to {_shown(after)}): "
                           "restart the daemon to apply")
    if bool(old.rpc_tls_certificate) != bool(new.rpc_tls_certificate):
        notices.append("RPCTLSCertificate turned TLS on or off: restart the daemon to apply")
    if old.workers != new.workers:
        notices.append(f"Workers changed ({_workers(old.workers)} to {_workers(new.workers)}): "
                       "restart the daemon (or upgrade it) to apply")
    return notices


def _shown(value: object) -> str:
    """A setting's value as a notice shows it: an empty one as ``""``."""
    return str(value) if value not in ("", None) else '""'


def _workers(value: int | None) -> str:
    return "one per CPU core" if value is None else str(value)
