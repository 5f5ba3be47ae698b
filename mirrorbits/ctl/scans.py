"""``refresh`` (the local repository) and ``scan`` (mirrors) of ``mirrorbits-ctl``, with
their progress on a terminal (spec §14.3).

The daemon answers ``<command>: not available yet`` (exit 1) while it lacks the operation.
"""

from __future__ import annotations

from mirrorbits.control import commands as c
from mirrorbits.ctl import flags as f
from mirrorbits.ctl.command_line import CommandSpec, Invocation, flag_set, make_spec
from mirrorbits.ctl.exits import Exit, fail
from mirrorbits.ctl.progress import watched
from mirrorbits.ctl.prompt import out
from mirrorbits.ctl.session import Reply, Session

#: The daemon's answer to a scan that the mirror's URLs do not allow (the reference's words).
NO_URL = "no suitable URL for the scan"
PROTOCOL_NAMES = {"rsync": "rsync", "ftp": "FTP", "http": "HTTP"}


async def _refresh(session: Session, invocation: Invocation) -> None:
    prefix = "Refreshing the local repository... "
    out(prefix)
    try:
        await watched(session, "refresh", prefix, session.call(
            c.RefreshRepository, timeout=None, rehash=invocation.options["rehash"]))
    except Exit:
        out("\n")
        raise
    out("done\n")


#: What the daemon's refusal says while its Redis is a replica (store.errors.READ_ONLY_REPLICA).
REPLICA = "is a read-only replica"


async def _scan(session: Session, invocation: Invocation) -> None:
    options = invocation.options
    if options["all"]:
        targets = [(m.id, m.name) for m in await session.all_mirrors()]
    elif invocation.args:
        targets = [await session.resolve(invocation.args[0])]
    else:
        raise fail(_SCAN.usage().lstrip("\n"), code=2)
    protocol = ("rsync" if options["rsync"] else "ftp" if options["ftp"]
                else "http" if options["http"] else "all")
    failed = 0
    for mirror_id, name in targets:
        prefix = f"Scanning {name}... "
        out(prefix)
        try:
            reply = await watched(session, "scan", prefix, session.call(
                c.ScanMirror,
                timeout=None,
                id=mirror_id,
                auto_enable=options["enable"],
                protocol=protocol,
                scan_timeout=float(f.number(options, "timeout")) or None,
            ), mirror_id=mirror_id)
        except Exit as error:
            message = error.stderr.strip()
            if message == NO_URL and protocol != "all":  # which one, when one was asked for
                message += f": {name} has no {PROTOCOL_NAMES[protocol]} URL"
            # The same answer for every mirror (no scan, or only a Redis replica): said once.
            if len(targets) == 1 or "not available" in message or REPLICA in message:
                raise fail(f"\nscan error: {message}") from None
            out(f"scan error: {message}\n")
            failed += 1
            continue
        out(scan_report(reply))
    if failed:  # the reference exited 0 here
        raise fail(f"{failed} of {len(targets)} scans failed")


def scan_report(reply: Reply) -> str:
    """The end of a ``Scanning <name>... `` line and its notes."""
    text = (
        f"{reply['files_indexed']} files indexed, {reply['known_indexed']} known "
        f"and {reply['removed']} removed\n"
    )
    if reply["tz_offset_ms"]:
        offset = reply["tz_offset_ms"]
        text += f"  ∟ Timezone offset detected and corrected: {offset} milliseconds\n"
    if reply["enabled"]:
        text += "  ∟ Enabled\n"
    return text


def _check_scan(options: f.Values, args: list[str]) -> None:
    """An identifier or ``-all``: said before connecting (the usage, not a connection error)."""
    if not args and not f.switch(options, "all"):
        raise Exit(2, "Error: scan takes 1 argument (or -all), none given\n"
                      + _SCAN.usage().lstrip("\n"))


_SCAN = make_spec(
    "scan", "[OPTIONS] IDENTIFIER", "(Re-)Scan a mirror", _scan,
    flag_set(
        ("enable", f.BOOL, False, "Enable the mirror automatically if the scan is successful"),
        ("all", f.BOOL, False, "Scan all mirrors at once"),
        ("ftp", f.BOOL, False, "Force a scan using FTP"),
        ("http", f.BOOL, False, "Force a scan of the HTTP index pages"),
        ("rsync", f.BOOL, False, "Force a scan using rsync"),
        ("timeout", f.UINT, 0, "Timeout in seconds"),
    ),
    args=(0, 1),
    check=_check_scan,
)
SCAN_SPECS: tuple[CommandSpec, ...] = (
    make_spec("refresh", "[OPTIONS]", "Refresh the local repository", _refresh,
              flag_set(("rehash", f.BOOL, False, "Force a rehash of the files")), args=(0, 0)),
    _SCAN,
)
