"""What ``mirrorbits-ctl`` prints: pure functions from values to text (spec §14.3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from attrs import frozen

from mirrorbits.ctl.tabwriter import tabulate
from mirrorbits.encoding import format_rfc1123_utc
from mirrorbits.model import Mirror

PROGRAM = "mirrorbits-ctl"
NEVER = "never"

# Keys of the version dictionaries and the labels ``version`` prints for them.
VERSION_LABELS = (
    ("Version", "Version:"),
    ("Build", "Build:"),
    ("PythonVersion", "Python version:"),
    ("OperatingSystem", "Operating System:"),
    ("Architecture", "Architecture:"),
)


class ResolveError(Exception):
    """An identifier that names no mirror or several; the message is for stderr."""


@frozen
class ListOptions:
    """The flags of ``list``."""

    http: bool = False
    rsync: bool = False
    ftp: bool = False
    location: bool = False
    score: bool = False
    state: bool = True
    disabled: bool = False
    enabled: bool = False
    down: bool = False


def select_mirrors(mirrors: Iterable[Mirror], options: ListOptions) -> list[Mirror]:
    """The mirrors ``list`` shows, newest state change first, then by name."""
    kept = [
        mirror
        for mirror in mirrors
        if not (options.disabled and mirror.enabled)
        and not (options.enabled and not mirror.enabled)
        and not (options.down and (not mirror.enabled or mirror.is_up))
    ]
    kept.sort(key=lambda mirror: mirror.name)
    kept.sort(key=_since_key, reverse=True)
    return kept


def _since_key(mirror: Mirror) -> int:
    return mirror.state_since if mirror.state_since is not None else -(2**63)


def list_table(mirrors: Iterable[Mirror], options: ListOptions) -> str:
    """The whole output of ``list``: header and one row per selected mirror."""
    header = "Identifier "
    if options.score:
        header += "\tSCORE"
    if options.http:
        header += "\tHTTP "
    if options.rsync:
        header += "\tRSYNC "
    if options.ftp:
        header += "\tFTP "
    if options.location:
        header += "\tLOCATION "
    if options.state:
        header += "\tSTATE\tSINCE"
        if options.down:
            header += "\tREASON"
    rows = [header + "\n"]
    rows.extend(_list_row(mirror, options) for mirror in select_mirrors(mirrors, options))
    return tabulate("".join(rows))


def _list_row(mirror: Mirror, options: ListOptions) -> str:
    row = f"{mirror.name} "
    if options.score:
        row += f"\t{mirror.score} "
    if options.http:
        row += f"\t{mirror.http_url} "
    if options.rsync:
        row += f"\t{mirror.rsync_url} "
    if options.ftp:
        row += f"\t{mirror.ftp_url} "
    if options.location:
        countries = mirror.country_fields
        country = countries[0] if countries else "/"
        row += f"\t{country} ({mirror.continent_code}) "
    if options.state:
        status = mirror.status_text if mirror.enabled else "disabled"
        row += f"\t{status} \t({since_text(mirror.state_since)})"
        if options.down:
            row += f"\t{down_reason(mirror)}"
    return row + "\n"


def down_reason(mirror: Mirror) -> str:
    """Why a mirror is down, from its last health checks (``list -down``'s ``REASON``).

    A mirror serving both protocols (no scheme in its URL) that is down on both for
    different reasons shows ``<HTTP reason> / <HTTPS reason>``, as the selection does.
    """
    http = mirror.http_down_reason if mirror.supports_http and not mirror.http_up else ""
    https = mirror.https_down_reason if mirror.supports_https and not mirror.https_up else ""
    if http and https and http != https:
        return f"{http} / {https}"
    if not (http or https or mirror.http_up or mirror.https_up) and (
            mirror.last_successful_sync is None):
        # Never checked: a health check needs a file that a scan found on the mirror (one
        # enabled without ``scan -enable``, whose scans fail).
        return f"Not scanned yet ({PROGRAM} logs {mirror.name} says why)"
    return http or https


def since_text(seconds: int | None) -> str:
    """A mirror time for people: RFC 1123 in UTC, or ``never`` for the zero time.

    The reference printed the zero time as ``Mon, 01 Jan 0001 00:00:00 UTC``.
    """
    return NEVER if seconds is None else format_rfc1123_utc(seconds)


def resolve_match(pattern: str, hits: Sequence[tuple[int, str]]) -> tuple[int, str]:
    """Pick the mirror an identifier designates among the names that contain it.

    A name equal to the pattern wins over longer names that merely contain it (``mirror``
    with ``mirror2`` present), first case-sensitively, then ignoring case.
    """
    if not hits:
        raise ResolveError(f"No match for '{pattern}'")
    if len(hits) == 1:
        return hits[0]
    for candidates in (
        [hit for hit in hits if hit[1] == pattern],
        [hit for hit in hits if hit[1].lower() == pattern.lower()],
    ):
        if len(candidates) == 1:
            return candidates[0]
    names = "".join(f"  {name}\n" for _, name in hits)
    raise ResolveError(f"Multiple match:\n{names}".rstrip("\n"))


def add_report(
    name: str,
    warnings: Sequence[str],
    location: Mapping[str, object] | None,
    target: str = "",
) -> str:
    """What ``add`` prints after the daemon accepted the mirror; ``target``: the global flags
    that reached the daemon (``-p 13390 ``), so that the hint can be run as printed."""
    out = ""
    if warnings:
        out += "".join(f"{warning}\n" for warning in warnings) + "\n"
    if location is not None:
        out += (
            "Mirror location:\n"
            f"Latitude:  {float(str(location['latitude'])):.4f}\n"
            f"Longitude: {float(str(location['longitude'])):.4f}\n"
            f"Continent: {location['continent']}\n"
            f"Country:   {location['country']}\n"
            f"ASN:       {location['as_name']} ({location['as_num']})\n"
            "\n"
        )
    out += (
        f"Mirror '{name}' added successfully\n"
        "Enable this mirror using\n"
        f"  $ {PROGRAM} {target}enable {name}\n"
    )
    return out


def version_block(title: str, fields: Mapping[str, str]) -> str:
    """``Client:``/``Server:`` and one `` <label> <value>`` line per known field."""
    lines = [f"{title}:\n"]
    known = {key for key, _ in VERSION_LABELS}
    for key, label in VERSION_LABELS:
        if key in fields:
            lines.append(f" {label:<17} {fields[key]}\n")
    for key, value in fields.items():
        if key not in known:
            lines.append(f" {key + ':':<17} {value}\n")
    return "".join(lines)


def logs_text(name: str, lines: Sequence[str]) -> str:
    """The output of ``logs``."""
    if not lines:
        return f"No logs for {name}\n"
    return f"Printing logs for {name}:\n" + "".join(f"{line}\n" for line in lines)
