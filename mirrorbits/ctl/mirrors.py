"""The mirror commands of ``mirrorbits-ctl``: add, remove, enable, disable, list, show, logs
(spec §14.3)."""

from __future__ import annotations

from typing import Any

from mirrorbits.control import commands as c
from mirrorbits.control.validate import (
    MirrorValidationError,
    check_http_url,
    check_identifier,
    check_scan_urls,
)
from mirrorbits.ctl import flags as f
from mirrorbits.ctl.command_line import CommandSpec, Invocation, Runner, flag_set, target_flags
from mirrorbits.ctl.command_line import make_spec as _spec
from mirrorbits.ctl.exits import Exit, fail
from mirrorbits.ctl.output import ListOptions, add_report, list_table, logs_text
from mirrorbits.ctl.prompt import confirm, out
from mirrorbits.ctl.session import REMOVE_TIMEOUT, Session
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
    defaults: dict[str, f.FlagValue] = {f.STRING: "", f.BOOL: False, f.INT: 0}
    return flag_set(*((name, kind, defaults[kind], usage) for name, _, kind, usage in ADD_FLAGS))


def _check_add(options: f.Values, args: list[str]) -> None:
    try:
        check_identifier(args[0])
        check_http_url(f.text(options, "http"))
        check_scan_urls(f.text(options, "rsync"), f.text(options, "ftp"))
    except MirrorValidationError as error:
        raise fail(str(error)) from None


async def _add(session: Session, invocation: Invocation) -> None:
    name = invocation.args[0]
    # The value of each flag has the type of its Mirror attribute (ADD_FLAGS names both).
    fields: dict[str, Any] = {attr: invocation.options[flag] for flag, attr, _, _ in ADD_FLAGS}
    mirror = Mirror(name=name, **fields)
    reply = await session.call(
        c.AddMirror,
        mirror=c.mirror_to_json(mirror),
        messages={c.NameTaken: f"Mirror {name} already exists!"},
    )
    location = reply if reply["located"] else None
    out(add_report(reply["name"], reply["warnings"], location, target_flags(invocation)))


async def _remove(session: Session, invocation: Invocation) -> None:
    mirror_id, name = await session.resolve(invocation.args[0])
    if not invocation.options["f"]:
        await session.require_writes()  # refused before the question, not after it
        if not confirm(f"Removing {name}, are you sure? [y/N]"):
            raise fail("Aborted")
        await session.resume()
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
    options = ListOptions(**{name: f.switch(invocation.options, name)
                             for name in invocation.options})
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


MIRROR_SPECS: tuple[CommandSpec, ...] = (
    _spec("add", "[OPTIONS] IDENTIFIER", "Add a new mirror", _add, _add_flags(),
          check=_check_add),
    _spec("remove", "[OPTIONS] IDENTIFIER", "Remove an existing mirror", _remove,
          flag_set(("f", f.BOOL, False, "Never prompt for confirmation"))),
    _spec("enable", "IDENTIFIER", "Enable a mirror", _status_command(True)),
    _spec("disable", "IDENTIFIER", "Disable a mirror", _status_command(False)),
    _spec("list", "[OPTIONS]", "Get the list of mirrors", _list, flag_set(*_LIST_FLAGS),
          args=(0, 0)),
    _spec("show", "IDENTIFIER", "Print a mirror configuration", _show),
    _spec("logs", "[OPTIONS] IDENTIFIER", "Print logs of a mirror", _logs,
          flag_set(("l", f.INT, 500, "Maximum number of lines"))),
)
