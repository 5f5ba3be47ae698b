"""The commands of ``mirrorbits-ctl`` about the daemon itself: reload, upgrade, version
(spec §14.3)."""

from __future__ import annotations

import sys

from mirrorbits import version_info
from mirrorbits.control import commands as c
from mirrorbits.ctl.command_line import CommandSpec, Invocation, make_spec
from mirrorbits.ctl.output import version_block
from mirrorbits.ctl.prompt import out
from mirrorbits.ctl.session import REMOVE_TIMEOUT, Session


async def _reload(session: Session, invocation: Invocation) -> None:
    reply = await session.call(c.Reload, timeout=REMOVE_TIMEOUT)
    out(c.warning_lines(reply.get("warnings") or ()), sys.stderr)


def _client_version() -> str:
    return version_block("Client", version_info())


async def _version(session: Session, invocation: Invocation) -> None:
    reply = await session.call(c.GetVersion)
    fields = {str(key): str(value) for key, value in reply["fields"].items()}
    if fields.get("Version"):
        out("\n" + version_block("Server", fields))


async def _upgrade(session: Session, invocation: Invocation) -> None:
    await session.call(c.Upgrade)


DAEMON_SPECS: tuple[CommandSpec, ...] = (
    make_spec("reload", "", "Reload configuration", _reload, args=(0, 0)),
    make_spec("version", "", "Print version information", _version, args=(0, 0),
              preamble=_client_version),
    make_spec("upgrade", "", "Seamless binary upgrade", _upgrade, args=(0, 0)),
)
