"""Extra rsync options of the ``RsyncOptions`` setting: which are allowed, and which apply to
a mirror (pure).

A scan only lists a mirror (``rsync -r URL``, no destination), so only options that change
what is listed or how the server is reached are accepted: nothing that writes locally, reads
local files, or runs a command (``-e``/``--rsh``, ``--files-from``, ``--exclude-from``,
``--rsync-path``, ``--write-batch``, ``--log-file``...). Everything else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

#: Every mirror without its own entry.
DEFAULT_ENTRY: Final = "*"

#: Options taken alone.
SWITCHES: Final = frozenset({
    "--copy-links", "-L", "--copy-unsafe-links", "--safe-links", "--copy-dirlinks", "-k",
    "--no-links", "--ipv4", "-4", "--ipv6", "-6", "--no-implied-dirs",
})
#: Options taken as ``--name=value``, and what their value must look like.
_NUMBER = re.compile(r"[0-9]+")
VALUED: Final[Mapping[str, re.Pattern[str] | None]] = {
    "--exclude": None,  # any pattern
    "--include": None,
    "--timeout": _NUMBER,
    "--contimeout": _NUMBER,
    "--bwlimit": re.compile(r"[0-9]+(?:\.[0-9]+)?[KMGkmg]?"),
    "--address": re.compile(r"[0-9A-Za-z.:-]+"),
    "--protocol": _NUMBER,
}


def option_problem(option: str) -> str:
    """Why ``option`` cannot be passed to a listing rsync ("" if it can)."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in option):
        return "it contains a control character"
    if option in SWITCHES:
        return ""
    name, equals, value = option.partition("=")
    if name in VALUED:
        if not equals:
            return f"it takes a value: write {name}=VALUE as one item"
        pattern = VALUED[name]
        if not value or (pattern is not None and not pattern.fullmatch(value)):
            return f"{value!r} is not a valid value for {name}"
        return ""
    allowed = sorted(SWITCHES | {f"{key}=..." for key in VALUED})
    return "only options that change the listing are allowed: " + ", ".join(allowed)


def options_for(table: Sequence[tuple[str, tuple[str, ...]]], mirror_name: str) -> tuple[str, ...]:
    """The options of a mirror: its own entry if it has one (even empty), else ``*``'s."""
    entries = dict(table)
    if mirror_name in entries:
        return entries[mirror_name]
    return entries.get(DEFAULT_ENTRY, ())
