"""``geoupdate`` of ``mirrorbits-ctl`` (spec §14.3): a mirror located again from its URL, or
every mirror (``-all``) after a GeoIP update.

``-all -f`` is for a timer: it saves the new coordinates of a mirror whose only change is
its coordinates (a city's point moved in the database), and leaves any other change (its
country, continent or network, which its ``CountryOnly``/``ASOnly`` rules and its users
follow) to a person: said, and the exit status is :data:`EXIT_CHANGES_LEFT`, as the
reference's ``contrib/mirrorbits-geoupdate-all`` exits. Without ``-f`` each change is asked.
"""

from __future__ import annotations

import attrs

from mirrorbits.control import commands as c
from mirrorbits.ctl import flags as f
from mirrorbits.ctl.command_line import CommandSpec, Invocation, flag_set, make_spec
from mirrorbits.ctl.exits import Exit, fail
from mirrorbits.ctl.prompt import confirm, out
from mirrorbits.ctl.session import Reply, Session
from mirrorbits.model import Mirror

#: ``geoupdate -all -f``: changes other than coordinates were left for a person.
EXIT_CHANGES_LEFT = 33
#: The fields a GeoIP update may move without changing where users are sent from.
COORDINATES = frozenset({"latitude", "longitude"})


async def geoupdate_command(session: Session, invocation: Invocation) -> None:
    """Locate one mirror (or ``-all``) again; save after confirmation (``-f``: at once)."""
    options = invocation.options
    if options["all"]:
        await _every_mirror(session, force=bool(options["f"]))
        return
    mirror_id, name = await session.resolve(invocation.args[0])
    await session.require_writes()  # refused before the lookup and the question
    reply = await session.call(c.GeoUpdateMirror, id=mirror_id)
    for warning in reply["warnings"]:
        out(f"{warning}\n")
    if not reply["diff"]:
        out("Geolocation is up to date, there is nothing to change.\n")
        return
    out(reply["diff"])
    if not options["f"]:
        if not confirm(f"Update mirror {name}? [y/N]"):
            raise fail("Aborted")
        await session.resume()
    await _save(session, name, reply)


async def _every_mirror(session: Session, force: bool) -> None:
    await session.require_writes()
    left: list[str] = []
    for mirror in await session.all_mirrors():
        reply = await session.call(c.GeoUpdateMirror, id=mirror.id)
        if not reply["diff"]:
            continue
        out(f"{mirror.name}:\n")
        for warning in reply["warnings"]:
            out(f"{warning}\n")
        out(reply["diff"])
        if force:
            if changed_fields(mirror, c.mirror_from_json(reply["mirror"])) <= COORDINATES:
                await _save(session, mirror.name, reply)
            else:
                out(f"Left unchanged: more than its coordinates would change "
                    f"(mirrorbits-ctl geoupdate {mirror.name})\n")
                left.append(mirror.name)
            continue
        if confirm(f"Update mirror {mirror.name}? [y/N]"):
            await session.resume()
            await _save(session, mirror.name, reply)
        else:
            await session.resume()
            left.append(mirror.name)
    if force and left:
        raise Exit(EXIT_CHANGES_LEFT, f"{len(left)} mirror(s) left unchanged: "
                                      f"{' '.join(left)}\n")


def changed_fields(before: Mirror, after: Mirror) -> set[str]:
    """The names of the fields that differ between two versions of a mirror."""
    return {field.name for field in attrs.fields(Mirror)
            if getattr(before, field.name) != getattr(after, field.name)}


async def _save(session: Session, name: str, reply: Reply) -> None:
    saved = await session.call(c.UpdateMirror, mirror=reply["mirror"])
    if saved["diff"] != reply["diff"]:
        out(f"Unexpected diff, see below:\n{saved['diff']}")
        return
    out(f"Mirror '{name}' updated successfully\n")


def _check(options: f.Values, args: list[str]) -> None:
    """An identifier or ``-all``: said before connecting."""
    if bool(args) == f.switch(options, "all"):
        raise Exit(2, "Error: geoupdate takes 1 argument or -all\n"
                      + _GEOUPDATE.usage().lstrip("\n"))


_GEOUPDATE = make_spec(
    "geoupdate", "[OPTIONS] IDENTIFIER", "Update geolocation of a mirror", geoupdate_command,
    flag_set(("all", f.BOOL, False, "Every mirror (with -f: saves coordinates only, exit 33 "
                                    "when other changes are left)"),
             ("f", f.BOOL, False, "Never prompt for confirmation")),
    args=(0, 1),
    check=_check,
)

GEOUPDATE_SPECS: tuple[CommandSpec, ...] = (_GEOUPDATE,)
