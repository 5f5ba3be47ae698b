"""Progress of a long ``refresh`` or ``scan`` on the terminal of ``mirrorbits-ctl``.

While the command's call runs, the CLI asks the daemon every half second how far it got
(``GetProgress``, on the same connection) and rewrites the rest of the current line with a
carriage return: ``Refreshing the local repository... listing: 120000 files, 41000 files/s``.
The line is cleared back to what it was before the result is printed, so the final output
is the same as without a terminal. Nothing of this happens when stdout is not a terminal,
and a daemon that does not answer ``GetProgress`` (an older one) just shows no progress.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Awaitable
from typing import TextIO, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater

from mirrorbits.control import commands as c
from mirrorbits.ctl.session import Session

POLL_INTERVAL = 0.5
POLL_TIMEOUT = 5.0
# A rate over a shorter time says little.
MIN_RATE_SECONDS = 0.5

T = TypeVar("T")


def progress_text(phase: str, done: int, total: int, seconds: float) -> str:
    """``listing: 1200 files, 800 files/s`` or ``indexing: 1000/5000 files, ...``."""
    count = f"{done}/{total} files" if total else f"{done} files"
    text = f"{phase}: {count}"
    if done and seconds >= MIN_RATE_SECONDS:
        text += f", {done / seconds:.0f} files/s"
    return text


class StatusLine:
    """The rest of a terminal line after ``prefix``, rewritten in place.

    ``prefix`` has already been written; :meth:`show` rewrites the line (carriage return,
    the prefix, the status, blanks over a longer former status), cut to the terminal's
    width so that it never wraps; :meth:`clear` leaves the cursor right after the prefix.
    """

    def __init__(self, stream: TextIO, prefix: str, width: int) -> None:
        self.stream = stream
        self.prefix = prefix
        self.width = width
        self.shown = 0

    def show(self, status: str) -> None:
        room = self.width - 1 - len(self.prefix)
        if room <= 0:
            return
        status = status[:room]
        blanks = " " * max(0, self.shown - len(status))
        self.stream.write(f"\r{self.prefix}{status}{blanks}")
        self.stream.flush()
        self.shown = len(status)

    def clear(self) -> None:
        if self.shown:
            self.stream.write(f"\r{self.prefix}{' ' * self.shown}\r{self.prefix}")
            self.stream.flush()
            self.shown = 0


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


async def watched(
    session: Session,
    operation: str,
    prefix: str,
    work: Awaitable[T],
    mirror_id: int = 0,
    stream: TextIO | None = None,
) -> T:
    """The result of ``work``, showing ``operation``'s progress after ``prefix`` meanwhile
    when ``stream`` (stdout) is a terminal."""
    target = stream if stream is not None else sys.stdout
    if not is_terminal(target):
        return await work
    line = StatusLine(target, prefix, shutil.get_terminal_size().columns)
    poller = Deferred.fromCoroutine(_poll(session, operation, mirror_id, line))
    poller.addErrback(lambda failure: None)
    try:
        return await work
    finally:
        poller.cancel()
        line.clear()


async def _poll(session: Session, operation: str, mirror_id: int, line: StatusLine) -> None:
    arguments: dict[str, object] = {"password": session.password, "operation": operation}
    if mirror_id:
        arguments["id"] = mirror_id
    while True:
        await deferLater(session.reactor, POLL_INTERVAL, lambda: None)
        asking = session.protocol.callRemote(c.GetProgress, **arguments)
        asking.addTimeout(POLL_TIMEOUT, session.reactor)
        try:
            reply = await asking
        except CancelledError:
            raise
        except Exception:
            return  # an older daemon, or trouble: the command goes on without progress
        if reply["running"]:
            line.show(progress_text(reply["phase"], reply["done"], reply["total"],
                                    reply["seconds"]))
