"""The notification protocol of ``Type=notify`` services (sd_notify(3)).

Messages are built by pure functions; :class:`Notifier` tracks what systemd was told and
sends each message as one datagram to ``NOTIFY_SOCKET``. Without that variable, or on a
send error (logged once), nothing is sent: notifications never stop the daemon.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from attrs import define, field

from mirrorbits.logs import Logger

log = Logger()

ENVIRONMENT = "NOTIFY_SOCKET"


def _lines(*lines: str) -> bytes:
    return "\n".join(lines).encode("utf-8", "replace")


def _status(text: str) -> str:
    return "STATUS=" + " ".join(text.split())  # one line


def ready_message(status: str, main_pid: int | None = None) -> bytes:
    """Serving (``main_pid``: this process replaces the service's main process)."""
    lines = [f"MAINPID={main_pid}"] if main_pid is not None else []
    return _lines(*lines, "READY=1", _status(status))


def reloading_message(monotonic_usec: int, status: str) -> bytes:
    """Reloading; systemd ≥ 253 requires the CLOCK_MONOTONIC time with ``RELOADING=1``."""
    return _lines("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", _status(status))


def stopping_message(status: str) -> bytes:
    return _lines("STOPPING=1", _status(status))


def status_message(status: str) -> bytes:
    return _lines(_status(status))


def socket_address(value: str) -> str | None:
    """Where ``NOTIFY_SOCKET`` points: a path, or ``@name`` in the abstract namespace.

    None for what a datagram UNIX socket cannot reach (``vsock:`` and others).
    """
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock of ``MONOTONIC_USEC``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def send_datagram(address: str, message: bytes) -> None:
    """One datagram to the UNIX socket ``address``, without blocking; OSError on failure."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(message, address)


@define(eq=False)
class Notifier:
    """What systemd is told: ``READY=1`` once serving, ``RELOADING=1``/``READY=1`` around
    a reload, ``STOPPING=1`` at stop.

    ``address`` None: not run by systemd, nothing is sent. Reloads and stops before the
    first ``READY=1`` (systemd still waits for the start) send nothing.
    """

    address: str | None
    clock: Callable[[], int] = monotonic_usec
    send: Callable[[str, bytes], None] = send_datagram
    _ready: bool = field(default=False, init=False)
    _reloading: bool = field(default=False, init=False)
    _failing: str = field(default="", init=False)

    @classmethod
    def from_value(cls, value: str | None) -> Notifier:
        """A notifier for ``NOTIFY_SOCKET``'s value (None: absent)."""
        if not value:
            return cls(None)
        address = socket_address(value)
        if address is None:
            log.warn("NOTIFY_SOCKET={value} is not supported: systemd will not be notified",
                     value=value)
        return cls(address)

    def environment(self) -> dict[str, str]:
        """``NOTIFY_SOCKET`` for a process that takes over (a successor), if any."""
        if self.address is None:
            return {}
        value = "@" + self.address[1:] if self.address.startswith("\0") else self.address
        return {ENVIRONMENT: value}

    def ready(self, status: str, main_pid: int | None = None) -> None:
        """Serving; ``main_pid`` when this process takes over from the main process."""
        self._ready, self._reloading = True, False
        self._send(ready_message(status, main_pid))

    def reloading(self) -> None:
        if self._ready:
            self._reloading = True
            self._send(reloading_message(self.clock(), "Reloading the configuration"))

    def reloaded(self, status: str) -> None:
        """The reload is over (applied or refused, ``status`` says which)."""
        if self._reloading:
            self.ready(status)

    def stopping(self) -> None:
        if self._ready:
            self._ready = False
            self._send(stopping_message("Stopping"))

    def status(self, text: str) -> None:
        """A new ``STATUS=`` while serving (not before the start or after the stop)."""
        if self._ready:
            self._send(status_message(text))

    def _send(self, message: bytes) -> None:
        if self.address is None:
            return
        try:
            self.send(self.address, message)
        except OSError as err:
            reason = err.strerror or str(err)
            if reason != self._failing:
                log.warn("Cannot notify systemd ({address}): {reason}",
                         address=self.address.replace("\0", "@"), reason=reason)
            self._failing = reason
        else:
            self._failing = ""
