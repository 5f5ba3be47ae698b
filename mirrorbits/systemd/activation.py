"""Socket activation (sd_listen_fds(3)): the listening sockets systemd passes us.

systemd passes ``LISTEN_FDS`` descriptors from 3 on, for the process ``LISTEN_PID``,
named in ``LISTEN_FDNAMES`` by each socket unit's ``FileDescriptorName=``: ``http`` is the
HTTP socket, ``control`` the control channel's, ``metrics`` the Prometheus metrics'. A single
socket with another name (the default is the socket unit's name) is the HTTP socket.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from attrs import frozen

FIRST_FD = 3
HTTP_NAME = "http"
CONTROL_NAME = "control"
METRICS_NAME = "metrics"
ENVIRONMENT = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(ValueError):
    """Sockets passed by systemd that cannot be told apart or counted; one line."""


@frozen
class ActivatedSockets:
    """The descriptors of the sockets systemd passed (None: not passed)."""

    http: int | None = None
    control: int | None = None
    metrics: int | None = None

    def __bool__(self) -> bool:
        return self.http is not None or self.control is not None or self.metrics is not None


NOT_ACTIVATED = ActivatedSockets()


def activated_sockets(env: Mapping[str, str], pid: int) -> ActivatedSockets:
    """The sockets ``env`` passes to process ``pid`` (none unless ``LISTEN_PID`` is ``pid``)."""
    if env.get("LISTEN_PID", "").strip() != str(pid):
        return ActivatedSockets()
    text = env.get("LISTEN_FDS", "")
    if not text.isascii() or not text.isdigit():
        raise ActivationError(f"systemd: LISTEN_FDS={text!r} is not a number of sockets")
    count = int(text)
    if count == 0:
        return ActivatedSockets()
    named = env.get("LISTEN_FDNAMES")
    names = named.split(":") if named is not None else [""] * count
    if len(names) != count:
        raise ActivationError(
            f"systemd: LISTEN_FDNAMES={named!r} names {len(names)} sockets, LISTEN_FDS={count}")
    found: dict[str, int] = {}
    others: list[str] = []
    for fd, name in enumerate(names, FIRST_FD):
        if name in (HTTP_NAME, CONTROL_NAME, METRICS_NAME):
            if name in found:
                raise ActivationError(f"systemd passed two sockets named {name!r}")
            found[name] = fd
        else:
            others.append(name)
    if others:
        if count != 1:
            described = "without names" if named is None else f"named {named!r}"
            raise ActivationError(
                f"systemd passed {count} sockets {described}: name them {HTTP_NAME!r} and "
                f"{CONTROL_NAME!r} (FileDescriptorName=)")
        found[HTTP_NAME] = FIRST_FD
    return ActivatedSockets(http=found.get(HTTP_NAME), control=found.get(CONTROL_NAME),
                            metrics=found.get(METRICS_NAME))


def take_activated_sockets(environ: MutableMapping[str, str], pid: int) -> ActivatedSockets:
    """:func:`activated_sockets`, then remove the variables from ``environ``.

    Processes we start (a successor, rsync) must not take the sockets for theirs. Call this
    before ``twisted.internet.endpoints`` is imported: it consumes the variables too.
    """
    try:
        return activated_sockets(environ, pid)
    finally:
        for name in ENVIRONMENT:
            environ.pop(name, None)
