"""The command line of ``mirrorbits-ctl``: global flags, the commands' specifications, usage.

Options and commands follow the reference CLI (Go-style single-dash flags, commands looked up
case-insensitively). Differences on purpose: failures and usage errors exit non-zero with
their message on stderr (usage errors: 2, failures: 1), ``-h unix:/path`` reaches a UNIX
control socket, an exact mirror name wins over longer names containing it, a port in a
mirror's URL is fine, and an empty or closed standard input at a prompt means "no".
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Awaitable, Callable, Mapping

from attrs import frozen

from mirrorbits.ctl import flags as f
from mirrorbits.ctl.exits import Exit
from mirrorbits.ctl.output import PROGRAM
from mirrorbits.ctl.session import Session, TLSFiles

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 3390
# The TLS flags, and the environment variables that stand for them when they are not given.
TLS_FLAGS = {
    "tls-ca": "MIRRORBITS_CTL_TLS_CA",
    "tls-cert": "MIRRORBITS_CTL_TLS_CERT",
    "tls-key": "MIRRORBITS_CTL_TLS_KEY",
}

USAGE_HEAD = f"""Usage: {PROGRAM} [OPTIONS] COMMAND [arg...]

A smart download redirector: the control client of the mirrorbits daemon.

The daemon itself is started with twistd:
    twistd mirrorbits --config /etc/mirrorbits.conf

Options:
"""

USAGE_COMMANDS = """
Commands:
    add       Add a new mirror
    disable   Disable a mirror
    edit      Edit a mirror
    enable    Enable a mirror
    export    Export the mirror database
    geoupdate Update geolocation of a mirror
    list      List all mirrors
    logs      Print logs of a mirror
    refresh   Refresh the local repository
    reload    Reload configuration
    remove    Remove a mirror
    scan      (Re-)Scan a mirror
    show      Print a mirror configuration
    stats     Show download stats
    upgrade   Seamless binary upgrade
    version   Print version information

"""


Runner = Callable[[Session, "Invocation"], Awaitable[None]]


@frozen
class CommandSpec:
    """One command: usage line, description, flags, argument count and implementation."""

    name: str
    signature: str
    description: str
    flags: f.FlagSet
    min_args: int
    max_args: int
    run: Runner
    preamble: Callable[[], str] | None = None
    check: Callable[[f.Values, list[str]], None] | None = None

    def usage(self) -> str:
        text = f"\nUsage: {PROGRAM} {self.name} {self.signature}".rstrip()
        text += f"\n\n{self.description}\n\n"
        return text + self.flags.defaults()


def flag_set(*entries: tuple[str, str, f.FlagValue, str]) -> f.FlagSet:
    """A flag set from ``(name, kind, default, usage)`` entries."""
    flags = f.FlagSet()
    for name, kind, default, usage in entries:
        flags.add(name, kind, default, usage)
    return flags


def make_spec(
    name: str,
    signature: str,
    description: str,
    run: Runner,
    flags: f.FlagSet | None = None,
    args: tuple[int, int] = (1, 1),
    check: Callable[[f.Values, list[str]], None] | None = None,
    preamble: Callable[[], str] | None = None,
) -> CommandSpec:
    """A :class:`CommandSpec` taking ``args`` (min, max) arguments."""
    return CommandSpec(
        name=name,
        signature=signature,
        description=description,
        flags=flags or f.FlagSet(),
        min_args=args[0],
        max_args=args[1],
        run=run,
        preamble=preamble,
        check=check,
    )


@frozen
class Invocation:
    """A parsed command line."""

    host: str
    port: int
    password: str
    ask_password: bool
    command: CommandSpec
    options: f.Values
    args: list[str]
    tls: TLSFiles | None = None


def target_flags(invocation: Invocation) -> str:
    """``-h HOST -p PORT `` as given when not the defaults (a hint to run as printed)."""
    words = []
    if invocation.host != DEFAULT_HOST:
        words += ["-h", shlex.quote(invocation.host)]
    if invocation.port != DEFAULT_PORT and not invocation.host.startswith("unix:"):
        words += ["-p", str(invocation.port)]
    return "".join(f"{word} " for word in words)


def global_flags() -> f.FlagSet:
    flags = f.FlagSet()
    flags.add("h", f.STRING, DEFAULT_HOST, "Daemon `host`, or unix:/path of its control socket")
    flags.add("p", f.PORT, DEFAULT_PORT, "Daemon control `port`")
    flags.add("P", f.STRING, "", "Control `password` (RPCPassword)")
    flags.add("a", f.BOOL, False, "Ask for the control password (masked)")
    flags.add("tls-ca", f.STRING, "", "Connect with TLS; the daemon's certificate must come "
              "from this CA `file` (PEM; $MIRRORBITS_CTL_TLS_CA)")
    flags.add("tls-cert", f.STRING, "", "Client certificate `file` (PEM) for TLS "
              "($MIRRORBITS_CTL_TLS_CERT)")
    flags.add("tls-key", f.STRING, "", "Its private key `file` (PEM; default: in the "
              "certificate's file; $MIRRORBITS_CTL_TLS_KEY)")
    flags.add("debug", f.BOOL, False, "Accepted for compatibility; no effect")
    flags.add("cpuprofile", f.STRING, "", "Accepted for compatibility; no effect")
    return flags


# Global flags that cannot follow the command name: there ``-h`` asks for help (or, for
# ``stats``, means human-readable sizes), as in the reference.
NOT_AFTER_COMMAND = ("h",)

USAGE_ORDER = (
    "\nOptions and flags may also follow the command and its arguments\n"
    "(mirrorbits-ctl list -P secret, mirrorbits-ctl remove NAME -f), except -h HOST.\n"
)


def usage_text() -> str:
    return USAGE_HEAD + global_flags().defaults() + USAGE_ORDER + USAGE_COMMANDS


def flag_error(error: f.FlagError) -> Exit:
    """A refused flag: one line on stderr, usage error."""
    return Exit(2, f"{error}\n")


def argument_count_error(command: CommandSpec, args: list[str]) -> str:
    """One line naming what is wrong with the number of arguments (the usage follows)."""
    low, high = command.min_args, command.max_args
    expected = (f"{low}" if low == high else f"at most {high}" if low == 0
                else f"{low} to {high}")
    plural = "" if expected.endswith(" 1") or expected == "1" else "s"
    given = f": {' '.join(args)}" if args else ""
    return (f"Error: {command.name} takes {expected} argument{plural}, "
            f"{len(args) or 'none'} given{given}\n")


def parse_command_line(argv: list[str], table: dict[str, CommandSpec],
                       environ: Mapping[str, str] = os.environ) -> Invocation:
    """The invocation ``argv`` asks for; raises :class:`Exit` for help and usage errors.

    Global flags come before the command, as in the reference, or after it (except ``-h``).
    A command's flags come before its arguments, as in the reference, or after them: a
    command line is first read with Go's rule (flags end at the first argument), and only
    when that leaves the wrong number of arguments are flags looked for among them, so every
    command line the reference accepts means what it meant there (``stats file -h`` still
    counts the files matching ``-h``).
    """
    top = global_flags()
    try:
        options, rest = top.parse(argv)
    except f.HelpRequested:
        raise Exit(0, stdout=usage_text()) from None
    except f.FlagError as error:
        if argv[-1:] == ["-h"]:  # "mirrorbits-ctl -h", asking for help as most tools take it
            raise Exit(2, f"{error} (the daemon's host; --help shows the usage)\n") from None
        raise flag_error(error) from None
    if not rest:
        raise Exit(2, usage_text())
    name = rest[0].lower()
    if name == "help":
        raise Exit(0, stdout=usage_text())
    command = table.get(name)
    if command is None:
        raise Exit(2, f"Error: Command not found: {rest[0]}\n{usage_text()}")
    flags = command.flags.merged(top, without=NOT_AFTER_COMMAND)
    try:
        values, given, args = flags.parse_given(rest[1:])
        if not command.min_args <= len(args) <= command.max_args:
            values, given, args = flags.parse_given(rest[1:], interspersed=True)
    except f.HelpRequested:
        raise Exit(0, stdout=command.usage().lstrip("\n")) from None
    except f.FlagError as error:
        raise flag_error(error) from None
    if not command.min_args <= len(args) <= command.max_args:
        raise Exit(2, argument_count_error(command, args) + command.usage())
    command_options = {key: values[key] for key in command.flags.flags}
    options.update({key: values[key] for key in given if key not in command.flags.flags})
    if command.check is not None:
        command.check(command_options, args)
    host = f.text(options, "h")
    return Invocation(
        host=host,
        port=f.number(options, "p"),
        password=f.text(options, "P"),
        ask_password=f.switch(options, "a"),
        command=command,
        options=command_options,
        args=args,
        tls=_tls_files(options, environ, host),
    )


def _tls_files(options: f.Values, environ: Mapping[str, str], host: str) -> TLSFiles | None:
    """The TLS files of the flags, else of the environment; None: no TLS."""
    files = {flag: f.text(options, flag) or environ.get(variable, "")
             for flag, variable in TLS_FLAGS.items()}
    if not any(files.values()):
        return None
    if not files["tls-ca"]:
        raise Exit(2, "-tls-cert and -tls-key need -tls-ca: the CA of the daemon's "
                      "certificate\n")
    if host.startswith("unix:"):
        raise Exit(2, "TLS is for a daemon reached over TCP, not on a UNIX socket\n")
    return TLSFiles(files["tls-ca"], files["tls-cert"], files["tls-key"])
