"""The commands of ``mirrorbits-ctl``: their flags, arguments and what they do (spec §14.3)."""

from __future__ import annotations

import sys
from typing import Any

from mirrorbits import version_info
from mirrorbits.control import commands as c
from mirrorbits.control import flags as f
from mirrorbits.control.cli import (
    REMOVE_TIMEOUT,
    CommandSpec,
    Exit,
    Invocation,
    Runner,
    Session,
    fail,
    flag_set,
)
from mirrorbits.control.cli import make_spec as _spec
from mirrorbits.control.cli_edit import edit_command, geoupdate_command
from mirrorbits.control.cli_later import LATER_SPECS
from mirrorbits.control.output import (
    ListOptions,
    add_report,
    list_table,
    logs_text,
    version_block,
)
from mirrorbits.control.prompt import confirm, out
from mirrorbits.control.validate import MirrorValidationError, check_http_url, check_identifier
from mirrorbits.model import Mirror

# add: flag name -> (Mirror attribute, kind, help)
ADD_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("http", "http_url", f.STRING, "HTTP base `URL` (http://, https:// or none for both)"),
    ("rsync", "rsync_url", f.STRING, "rsync base `URL`"),
    ("ftp", "ftp_url", f.STRING, "FTP base `URL`"),
    ("sponsor-name", "sponsor_name", f.STRING, "Name of the sponsor"),
    ("sponsor-url", "sponsor_url", f.STRING, "URL of the sponsor"),
    ("sponsor-logo", "sponsor_logo_url", f.STRING, "URL of a logo to display for this mirror"),
    ("admin-name", "admin_name", f.STRING, "Name of the mirror administrator"),
    ("admin-email", "admin_email", f.STRING, "Contact of the mirror administrator"),
    ("custom-data", "custom_data", f.STRING, "Data returned with the mirror in JSON"),
    ("continent-only", "continent_only", f.BOOL, "The mirror should only handle its continent"),
    ("country-only", "country_only", f.BOOL, "The mirror should only handle its country"),
    ("as-only", "as_only", f.BOOL, "The mirror should only handle clients in the same AS number"),
    ("score", "score", f.INT, "Weight to give to the mirror during selection"),
    ("comment", "comment", f.STRING, "Comment"),
)


def _add_flags() -> f.FlagSet:
    defaults = {f.STRING: "", f.BOOL: False, f.INT: 0}
    return flag_set(*((name, kind, defaults[kind], usage) for name, _, kind, usage in ADD_FLAGS))


def _check_add(options: dict[str, Any], args: list[str]) -> None:
    try:
        check_identifier(args[0])
        check_http_url(options["http"])
    except MirrorValidationError as error:
        raise fail(str(error)) from None


async def _add(session: Session, invocation: Invocation) -> None:
    name = invocation.args[0]
    fields = {attr: invocation.options[flag] for flag, attr, _, _ in ADD_FLAGS}
    mirror = Mirror(name=name, **fields)
    reply = await session.call(
        c.AddMirror,
        mirror=c.mirror_to_json(mirror),
        messages={c.NameTaken: f"Mirror {name} already exists!"},
    )
    location = reply if reply["located"] else None
    out(add_report(reply["name"], reply["warnings"], location))


async def _remove(session: Session, invocation: Invocation) -> None:
    mirror_id, name = await session.resolve(invocation.args[0])
    if not invocation.options["f"] and not confirm(f"Removing {name}, are you sure? [y/N]"):
        raise fail("Aborted")
    await session.call(c.RemoveMirror, timeout=REMOVE_TIMEOUT, id=mirror_id)
    out(f"Mirror '{name}' removed successfully\n")


def _status_command(enabled: bool) -> Runner:
    verb = "enable" if enabled else "disable"

    async def change(session: Session, invocation: Invocation) -> None:
        mirror_id, name = await session.resolve(invocation.args[0])
        try:
            await session.call(c.ChangeStatus, id=mirror_id, enabled=enabled)
        except Exit as error:
            raise fail(f"Couldn't {verb} mirror '{name}': {error.stderr.strip()}") from None
        out(f"Mirror '{name}' {verb}d successfully\n")

    return change


async def _list(session: Session, invocation: Invocation) -> None:
    options = ListOptions(**invocation.options)
    out(list_table(await session.all_mirrors(), options))


async def fetch_mirror(session: Session, identifier: str) -> Mirror:
    mirror_id, _ = await session.resolve(identifier)
    reply = await session.call(c.MirrorInfo, id=mirror_id)
    return c.mirror_from_json(reply["mirror"])


async def _show(session: Session, invocation: Invocation) -> None:
    from mirrorbits.control.mirror_yaml import show_text

    out(show_text(await fetch_mirror(session, invocation.args[0])))


async def _logs(session: Session, invocation: Invocation) -> None:
    mirror_id, name = await session.resolve(invocation.args[0])
    reply = await session.call(
        c.GetMirrorLogs, id=mirror_id, max_results=invocation.options["l"]
    )
    out(logs_text(name, reply["lines"]))


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


_LIST_FLAGS = (
    ("http", f.BOOL, False, "Print HTTP addresses"),
    ("rsync", f.BOOL, False, "Print rsync addresses"),
    ("ftp", f.BOOL, False, "Print FTP addresses"),
    ("location", f.BOOL, False, "Print the country and continent code"),
    ("score", f.BOOL, False, "Print user's score"),
    ("state", f.BOOL, True, "Print the state of the mirror"),
    ("disabled", f.BOOL, False, "List disabled mirrors only"),
    ("enabled", f.BOOL, False, "List enabled mirrors only"),
    ("down", f.BOOL, False, "List only enabled mirrors that are down"),
)

_SPECS = (
    _spec("add", "[OPTIONS] IDENTIFIER", "Add a new mirror", _add, _add_flags(),
          check=_check_add),
    _spec("remove", "[OPTIONS] IDENTIFIER", "Remove an existing mirror", _remove,
          flag_set(("f", f.BOOL, False, "Never prompt for confirmation"))),
    _spec("edit", "IDENTIFIER", "Edit a mirror", edit_command),
    _spec("enable", "IDENTIFIER", "Enable a mirror", _status_command(True)),
    _spec("disable", "IDENTIFIER", "Disable a mirror", _status_command(False)),
    _spec("list", "[OPTIONS]", "Get the list of mirrors", _list, flag_set(*_LIST_FLAGS),
          args=(0, 0)),
    _spec("show", "IDENTIFIER", "Print a mirror configuration", _show),
    _spec("logs", "[OPTIONS] IDENTIFIER", "Print logs of a mirror", _logs,
          flag_set(("l", f.INT, 500, "Maximum number of lines"))),
    _spec("geoupdate", "[OPTIONS] IDENTIFIER", "Update geolocation of a mirror",
          geoupdate_command, flag_set(("f", f.BOOL, False, "Never prompt for confirmation"))),
    _spec("reload", "", "Reload configuration", _reload, args=(0, 0)),
    _spec("version", "", "Print version information", _version, args=(0, 0),
          preamble=_client_version),
    *LATER_SPECS,
)

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in _SPECS}
