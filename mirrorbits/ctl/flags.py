"""Single-dash command-line flags with the conventions of Go's ``flag`` package.

The reference CLI parses its options that way and operators' scripts rely on it:

* ``-name value``, ``-name=value``, ``--name`` (one or two dashes); boolean flags take no
  separate value (``-state=false``, never ``-state false``);
* parsing stops at the first argument that is not a flag, at ``-`` or after ``--``;
* an undefined ``-help``/``-h`` asks for help; other undefined flags are errors.

On top of Go's rules, :meth:`FlagSet.parse` can read *interspersed* flags (after the
arguments too: ``stats mirror X -start-date 2026-12-01``), and values are checked when they
are read: a ``date`` flag must be a real ``YYYY-MM-DD`` day, a ``port`` flag 1 to 65535,
integers must fit 64 bits. Every :class:`FlagError` is one line naming the flag and value.

:meth:`FlagSet.defaults` prints the flag list in Go's ``PrintDefaults`` layout.
"""

from __future__ import annotations

import re
from datetime import date

from attrs import define, field, frozen

BOOL, STRING, INT, UINT, DATE, PORT = "bool", "string", "int", "uint", "date", "port"
# The type name ``defaults`` shows for a kind (Go has no date or port flags).
_SHOWN_KIND = {DATE: "string", PORT: "uint"}
_DAY_RE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})\Z")
_INT64 = 2**63
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


#: A flag's value: what its kind parses to (a date flag without default is None).
FlagValue = bool | int | str | date | None
#: Flag values by name.
Values = dict[str, FlagValue]


class FlagError(ValueError):
    """A command line the flag set refuses; the message is Go's wording."""


class HelpRequested(Exception):
    """``-help`` (or ``-h`` where it is not defined) was given."""


@frozen
class Flag:
    """One flag: its name, type, default value and help text."""

    name: str
    kind: str
    default: FlagValue
    usage: str


@define
class FlagSet:
    """The flags of the global command line or of one command."""

    flags: dict[str, Flag] = field(factory=dict)

    def add(self, name: str, kind: str, default: FlagValue, usage: str) -> None:
        self.flags[name] = Flag(name, kind, default, usage)

    def parse(
        self, args: list[str], interspersed: bool = False
    ) -> tuple[Values, list[str]]:
        """The flag values (defaults filled in) and the remaining arguments.

        Go's rule by default: the first argument that is not a flag ends the flags. With
        ``interspersed`` the flags may also follow the arguments; ``--`` still ends them.
        """
        values, _, rest = self.parse_given(args, interspersed)
        return values, rest

    def parse_given(
        self, args: list[str], interspersed: bool = False
    ) -> tuple[Values, set[str], list[str]]:
        """Like :meth:`parse`, with the names of the flags the command line set."""
        values = {name: flag.default for name, flag in self.flags.items()}
        given: set[str] = set()
        rest: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            if len(arg) < 2 or not arg.startswith("-"):
                if not interspersed:
                    break
                rest.append(arg)
                index += 1
                continue
            index += 1
            if arg == "--":
                break
            name = arg[2:] if arg.startswith("--") else arg[1:]
            if not name or name.startswith(("-", "=")):
                raise FlagError(f"bad flag syntax: {arg}")
            name, has_value, value = name.partition("=")
            flag = self.flags.get(name)
            if flag is None:
                if name in ("help", "h"):
                    raise HelpRequested()
                raise FlagError(f"flag provided but not defined: -{name}")
            given.add(name)
            if flag.kind == BOOL:
                if not has_value:
                    values[name] = True
                    continue
                if value not in _TRUE and value not in _FALSE:
                    raise FlagError(f'invalid boolean value "{value}" for -{name}: parse error')
                values[name] = value in _TRUE
                continue
            if not has_value:
                if index >= len(args):
                    raise FlagError(f"flag needs an argument: -{name}")
                value = args[index]
                index += 1
            values[name] = _convert(flag, value)
        return values, given, rest + args[index:]

    def merged(self, other: FlagSet, without: tuple[str, ...] = ()) -> FlagSet:
        """These flags plus ``other``'s (but ``without``); ours win where names clash."""
        flags = {name: flag for name, flag in other.flags.items() if name not in without}
        flags.update(self.flags)
        return FlagSet(flags)

    def defaults(self) -> str:
        """One entry per flag, sorted by name, as Go's ``PrintDefaults`` writes them."""
        out: list[str] = []
        for name in sorted(self.flags):
            flag = self.flags[name]
            line = f"  -{name}"
            type_name, usage = _unquote_usage(flag)
            if type_name:
                line += f" {type_name}"
            line += "\t" if len(line) <= 4 else "\n    \t"
            line += usage.replace("\n", "\n    \t")
            if flag.default not in (False, "", 0, None):
                shown = f'"{flag.default}"' if flag.kind == STRING else _text(flag.default)
                line += f" (default {shown})"
            out.append(line + "\n")
        return "".join(out)


def _unquote_usage(flag: Flag) -> tuple[str, str]:
    """The value name shown after the flag and the help text.

    A back-quoted word of the help text names the value (and loses its quotes); otherwise
    the type is shown, nothing for booleans.
    """
    first = flag.usage.find("`")
    if first >= 0:
        second = flag.usage.find("`", first + 1)
        if second >= 0:
            name = flag.usage[first + 1 : second]
            usage = flag.usage[:first] + name + flag.usage[second + 1 :]
            return name, usage
    return ("" if flag.kind == BOOL else _SHOWN_KIND.get(flag.kind, flag.kind)), flag.usage


def _convert(flag: Flag, value: str) -> int | str | date:
    if flag.kind == STRING:
        return value
    if flag.kind == DATE:
        return _convert_day(flag, value)
    try:
        number = _parse_int(value)
    except ValueError:
        raise FlagError(f'invalid value "{value}" for flag -{flag.name}: parse error') from None
    if flag.kind in (UINT, PORT) and number < 0:
        raise FlagError(f'invalid value "{value}" for flag -{flag.name}: parse error')
    if flag.kind == PORT and not 0 < number < 65536:
        raise FlagError(f'invalid value "{value}" for flag -{flag.name}: '
                        "not a port number (1-65535)")
    if not -_INT64 <= number < (2 * _INT64 if flag.kind == UINT else _INT64):
        raise FlagError(f'invalid value "{value}" for flag -{flag.name}: value out of range')
    return number


def text(values: Values, name: str) -> str:
    """The value of the string flag ``name``."""
    value = values[name]
    if not isinstance(value, str):
        raise TypeError(f"-{name} is not a string flag")
    return value


def number(values: Values, name: str) -> int:
    """The value of the number flag ``name``."""
    value = values[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"-{name} is not a number flag")
    return value


def switch(values: Values, name: str) -> bool:
    """The value of the boolean flag ``name``."""
    value = values[name]
    if not isinstance(value, bool):
        raise TypeError(f"-{name} is not a boolean flag")
    return value


def day(values: Values, name: str) -> date | None:
    """The value of the date flag ``name`` (None: not given)."""
    value = values[name]
    if value is not None and not isinstance(value, date):
        raise TypeError(f"-{name} is not a date flag")
    return value


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` day (month and day may be unpadded, as Go's ``2006-1-2`` layout).

    Raises :class:`ValueError` with the reason.
    """
    match = _DAY_RE.match(text.strip())
    if match is None:
        raise ValueError("expected a date as YYYY-MM-DD")
    year, month, day = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError as error:
        raise ValueError(str(error)) from None


def _convert_day(flag: Flag, value: str) -> date:
    try:
        return parse_day(value)
    except ValueError as error:
        raise FlagError(f'invalid value "{value}" for flag -{flag.name}: {error}') from None


def _parse_int(text: str) -> int:
    """An integer in Go's base-0 syntax (``42``, ``-7``, ``0x1f``, ``0o17``, ``017``)."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" else text
    body = body.replace("_", "") if body[:2].lower() in ("0x", "0o", "0b") else body
    if len(body) > 1 and body[0] == "0" and body[1].isdigit():
        return sign * int(body[1:], 8)
    return sign * int(body, 0)


def _text(value: FlagValue) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)
