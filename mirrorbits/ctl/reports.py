"""``stats`` (download counters) and ``export`` (the Mirmon list) of ``mirrorbits-ctl``
(spec §14.3, §16)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from mirrorbits.control import commands as c
from mirrorbits.ctl import flags as f
from mirrorbits.ctl.command_line import CommandSpec, Invocation, flag_set, make_spec
from mirrorbits.ctl.exits import Exit
from mirrorbits.ctl.prompt import out
from mirrorbits.ctl.session import Session
from mirrorbits.ctl.tabwriter import tabulate
from mirrorbits.encoding import human_size
from mirrorbits.mirmon import mirmon_list
from mirrorbits.model import Mirror


class DateRangeError(ValueError):
    """Dates of ``stats`` that make no range; the message names the flags."""


def stats_days(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """The first and the day after the last day ``stats`` counts.

    Both days are included; a missing one is ``today`` (UTC, like the counters). The
    reference counted up to the start of its end day, so its end day was left out.
    """
    first = start or today
    last = end or today
    if first > last:
        if start is None:
            raise DateRangeError(f"-end-date {last.isoformat()} is before today "
                                 f"({first.isoformat()}): give a -start-date too")
        shown = f"-end-date {last.isoformat()}" if end else f"today ({last.isoformat()})"
        raise DateRangeError(f"-start-date {first.isoformat()} is after {shown}")
    if last == date.max:
        raise DateRangeError(f"-end-date {last.isoformat()} is out of range")
    return first, last + timedelta(days=1)


def utc_today() -> date:
    return datetime.now(UTC).date()


def stats_file_text(files: dict[str, int]) -> str:
    """``stats file``: one line per path, then the total."""
    rows = "".join(f"{path}:\t{count}\n" for path, count in sorted(files.items()))
    if rows:
        rows += "\t\n"
    rows += f"Total download requests: \t{sum(files.values())}\n"
    return tabulate(rows)


def stats_mirror_text(mirror: Mirror, requests: int, size: int, human: bool) -> str:
    """``stats mirror``: name, state, requests and bytes."""
    status = mirror.status_text if mirror.enabled else "disabled"
    shown = human_size(size) if human else str(size)
    return tabulate(
        f"Identifier:\t{mirror.name}\nStatus:\t{status}\n"
        f"Download requests:\t{requests}\nBytes transferred:\t{shown}\n"
    )


async def _stats(session: Session, invocation: Invocation) -> None:
    kind, target = invocation.args
    options = invocation.options
    first, after = stats_days(f.day(options, "start-date"), f.day(options, "end-date"), utc_today())
    start, end = first.isoformat(), after.isoformat()
    if kind == "file":
        reply = await session.call(c.StatsFile, pattern=target, start=start, end=end)
        out(stats_file_text({str(k): int(v) for k, v in reply["files"].items()}))
        return
    mirror_id, _ = await session.resolve(target)
    reply = await session.call(c.StatsMirror, id=mirror_id, start=start, end=end)
    mirror = c.mirror_from_json(reply["mirror"])
    out(stats_mirror_text(mirror, reply["requests"], reply["bytes"], f.switch(options, "h")))


def _check_stats(options: f.Values, args: list[str]) -> None:
    if args[0] not in ("mirror", "file"):
        raise Exit(2, f"Error: stats counts a mirror or files (stats mirror NAME, stats file "
                      f"PATTERN), not {args[0]!r}\n" + _STATS.usage().lstrip("\n"))
    try:
        stats_days(f.day(options, "start-date"), f.day(options, "end-date"), utc_today())
    except DateRangeError as error:
        raise Exit(2, f"{error}\n") from None


def mirmon_text(mirrors: Iterable[Mirror], options: f.Values) -> str:
    """The Mirmon list (spec §16) with ``export``'s flags."""
    return mirmon_list(mirrors, rsync=f.switch(options, "rsync"), http=f.switch(options, "http"),
                       ftp=f.switch(options, "ftp"), disabled=f.switch(options, "disabled"))


async def _export(session: Session, invocation: Invocation) -> None:
    out(mirmon_text(await session.all_mirrors(), invocation.options))


def _check_export(options: f.Values, args: list[str]) -> None:
    if args[0] != "mirmon":
        raise Exit(2, "Unsupported format\n" + _EXPORT.usage())


_STATS = make_spec(
    "stats", "[OPTIONS] [mirror|file] [IDENTIFIER|PATTERN]",
    "Show download stats\n\nmirror IDENTIFIER: the downloads and bytes of one mirror.\n"
    "file PATTERN: the downloads of each file whose path matches PATTERN, a regular\n"
    "expression ('\\.iso$' for the files ending in .iso, '^/pub/' for those under /pub).",
    _stats,
    flag_set(
        ("start-date", f.DATE, None, "Starting date (format YYYY-MM-DD)"),
        ("end-date", f.DATE, None, "Ending date, included (format YYYY-MM-DD)"),
        ("h", f.BOOL, True, "Human readable version"),
    ),
    args=(2, 2),
    check=_check_stats,
)
_EXPORT = make_spec(
    "export", "[format]", "Export the mirror database.\n\nAvailable formats: mirmon", _export,
    flag_set(
        ("disabled", f.BOOL, True, "Export disabled mirrors"),
        ("ftp", f.BOOL, True, "Export ftp URLs"),
        ("http", f.BOOL, True, "Export http URLs"),
        ("rsync", f.BOOL, True, "Export rsync URLs"),
    ),
    check=_check_export,
)

REPORT_SPECS: tuple[CommandSpec, ...] = (_STATS, _EXPORT)
