"""``mirrorbits-ctl``: the command-line client of the daemon's control channel (spec §14).

Options and commands follow the reference CLI (Go-style single-dash flags, commands looked up
case-insensitively). Differences on purpose: failures and usage errors exit non-zero with
their message on stderr (usage errors: 2, failures: 1), ``-h unix:/path`` reaches a UNIX
control socket, an exact mirror name wins over longer names containing it, a port in a
mirror's URL is fine, and an empty or closed standard input at a prompt means "no".
"""

from __future__ import annotations

import getpass
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any

from attrs import frozen
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError
from twisted.internet.task import react
from twisted.protocols import amp

from mirrorbits.control import commands as c
from mirrorbits.control import flags as f
from mirrorbits.control.output import PROGRAM
from mirrorbits.control.prompt import interruptible, line_open
from mirrorbits.model import Mirror

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 3390
CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
REMOVE_TIMEOUT = 60.0

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


class Exit(Exception):
    """Stop with this exit code after printing ``stdout`` and ``stderr``."""

    def __init__(self, code: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(code, stderr, stdout)
        self.code = code
        self.stderr = stderr
        self.stdout = stdout


def fail(message: str, code: int = 1) -> Exit:
    """A failure: ``message`` (one line added) on stderr."""
    return Exit(code, message.rstrip("\n") + "\n")


Runner = Callable[["Session", "Invocation"], Coroutine[Any, Any, None]]


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
    check: Callable[[dict[str, Any], list[str]], None] | None = None

    def usage(self) -> str:
        text = f"\nUsage: {PROGRAM} {self.name} {self.signature}".rstrip()
        text += f"\n\n{self.description}\n\n"
        return text + self.flags.defaults()


def flag_set(*entries: tuple[str, str, Any, str]) -> f.FlagSet:
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
    check: Callable[[dict[str, Any], list[str]], None] | None = None,
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
    options: dict[str, Any]
    args: list[str]


def global_flags() -> f.FlagSet:
    flags = f.FlagSet()
    flags.add("h", f.STRING, DEFAULT_HOST, "Daemon `host`, or unix:/path of its control socket")
    flags.add("p", f.PORT, DEFAULT_PORT, "Daemon control `port`")
    flags.add("P", f.STRING, "", "Control `password` (RPCPassword)")
    flags.add("a", f.BOOL, False, "Ask for the control password (masked)")
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


def parse_command_line(argv: list[str], table: dict[str, CommandSpec]) -> Invocation:
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
        raise Exit(2, command.usage().lstrip("\n"))
    command_options = {key: values[key] for key in command.flags.flags}
    options.update({key: values[key] for key in given if key not in command.flags.flags})
    if command.check is not None:
        command.check(command_options, args)
    return Invocation(
        host=options["h"],
        port=options["p"],
        password=options["P"],
        ask_password=options["a"],
        command=command,
        options=command_options,
        args=args,
    )


@frozen
class Session:
    """An authenticated AMP connection to the daemon."""

    reactor: Any
    protocol: amp.AMP
    password: str
    target: str

    async def call(
        self,
        command: type[amp.Command],
        timeout: float | None = CALL_TIMEOUT,
        messages: dict[type[Exception], str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Run ``command``; daemon errors come back as :class:`Exit` (code 1).

        ``messages`` replaces the daemon's message for some error classes.
        """
        d = self.protocol.callRemote(command, password=self.password, **kwargs)
        if timeout is not None:
            d.addTimeout(timeout, self.reactor)
        try:
            result: dict[str, Any] = await d
        except tuple(messages or ()) as error:
            assert messages is not None
            raise fail(messages[type(error)]) from None
        except c.AccessDenied:
            if self.password:
                raise fail("Password refused") from None
            raise fail("Please set the server password with the -P option.") from None
        except c.ControlError as error:
            raise fail(error.message or type(error).__name__) from None
        except defer.TimeoutError:
            raise fail(f"rpc: {self.target} did not answer within {timeout:g} seconds") from None
        except (amp.UnknownRemoteError, amp.UnhandledCommand) as error:
            raise fail(f"rpc: the daemon refused the command: {error}") from None
        except Exception as error:
            raise fail(f"rpc: connection to {self.target} lost: {error}") from None
        return result

    async def all_mirrors(self) -> list[Mirror]:
        """Every mirror, fetched page by page."""
        mirrors: list[Mirror] = []
        offset = 0
        for _ in range(10_000_000):  # a bound only: the daemon says when there is no more
            reply = await self.call(c.List, offset=offset, limit=c.LIST_PAGE_SIZE)
            mirrors.extend(c.mirror_from_json(item) for item in reply["mirrors"])
            if not reply["more"]:
                break
            offset += c.LIST_PAGE_SIZE
        return mirrors

    async def resolve(self, pattern: str) -> tuple[int, str]:
        """The ``(id, name)`` an identifier designates (see ``output.resolve_match``)."""
        from mirrorbits.control.output import ResolveError, resolve_match

        reply = await self.call(c.MatchMirror, pattern=pattern)
        hits = [(int(mirror_id), str(name)) for mirror_id, name in reply["mirrors"]]
        try:
            return resolve_match(pattern, hits)
        except ResolveError as error:
            raise fail(str(error)) from None


def _target(host: str, port: int) -> str:
    return host if host.startswith("unix:") else f"{host}:{port}"


async def connect(reactor: Any, host: str, port: int) -> amp.AMP:
    """An AMP connection to the daemon; :class:`Exit` with a clear message if impossible."""
    target = _target(host, port)
    if host.startswith("unix:"):
        endpoint: Any = UNIXClientEndpoint(reactor, host[len("unix:"):], timeout=CONNECT_TIMEOUT)
    else:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        endpoint = HostnameEndpoint(reactor, bare, port, timeout=CONNECT_TIMEOUT)
    try:
        protocol: amp.AMP = await connectProtocol(endpoint, amp.AMP())
    except ConnectionRefusedError:
        raise fail(f"rpc: cannot connect to the daemon at {target}: connection refused") from None
    except DNSLookupError:
        raise fail(f"rpc: cannot connect to the daemon at {target}: unknown host") from None
    except (ConnectError, OSError) as error:
        reason = getattr(error, "osError", None) or error
        raise fail(f"rpc: cannot connect to the daemon at {target}: {reason}") from None
    return protocol


def ask_password() -> str:
    """Read the password without echo; a closed input gives an empty password."""
    try:
        with interruptible():
            return getpass.getpass("Password: ")
    except EOFError:
        return ""
    except KeyboardInterrupt:
        raise Exit(EXIT_INTERRUPTED, "\nInterrupted\n") from None


async def run(reactor: Any, invocation: Invocation) -> None:
    """Connect, check the password with ``Ping``, run the command, disconnect."""
    password = invocation.password
    if not password and invocation.ask_password:
        password = ask_password()
    target = _target(invocation.host, invocation.port)
    protocol = await connect(reactor, invocation.host, invocation.port)
    try:
        session = Session(reactor, protocol, password, target)
        await session.call(c.Ping)
        await invocation.command.run(session, invocation)
    finally:
        if protocol.transport is not None:
            protocol.transport.loseConnection()


def _emit(error: Exit) -> None:
    if error.stdout:
        sys.stdout.write(error.stdout)
    if error.stderr:
        _flush_stdout()
        sys.stderr.write(error.stderr)


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


# Exit codes beyond usage errors (2) and failures (1).
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as if the pipe's signal had ended the process
EXIT_INTERRUPTED = 130  # 128 + SIGINT


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


def _report_unexpected(error: BaseException) -> int:
    """One line for an error no command expects (no traceback); the exit code."""
    if isinstance(error, BrokenPipeError):  # the reader went away (| head): stop quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if sys.stdout is None:
        message = "standard output is closed"
    elif isinstance(error, OSError) and error.filename is None:
        message = f"cannot write the output: {error.strerror or error}"
    else:
        message = f"unexpected error: {type(error).__name__}: {error}"
    sys.stderr.write(f"{PROGRAM}: {message}\n")
    return 1


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mirrorbits-ctl`` console script.

    Every failure exits non-zero: usage errors 2, failures 1, an interruption (Ctrl-C, or
    SIGTERM) 130, a closed output pipe 141.
    """
    from mirrorbits.control.cli_commands import COMMANDS

    arguments = sys.argv[1:] if argv is None else argv
    try:
        invocation = parse_command_line(arguments, COMMANDS)
    except Exit as error:
        _emit(error)
        raise SystemExit(error.code) from None
    finished = False
    interrupted = False

    def on_shutdown() -> None:
        # The reactor stops before the command is done: Ctrl-C or SIGTERM. Its connection
        # is about to be cut; the command must not report that as a daemon failure, and a
        # second Ctrl-C must not interrupt the report.
        nonlocal interrupted
        interrupted = not finished
        if interrupted:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def entry(reactor: Any) -> None:
        nonlocal finished
        reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
        code = 0
        try:
            if invocation.command.preamble is not None:
                sys.stdout.write(invocation.command.preamble())
            await run(reactor, invocation)
            _flush_stdout()
        except Exit as error:
            if interrupted:
                raise SystemExit(_report_interruption()) from None
            try:
                _emit(error)
            except Exception as failure:
                _report_unexpected(failure)
            code = error.code
        except Exception as error:
            code = _report_unexpected(error)
        finally:
            finished = True
        if code:
            raise SystemExit(code)

    try:
        react(entry)
    except SystemExit as stop:
        if interrupted and not stop.code:  # the command never came back
            raise SystemExit(_report_interruption()) from None
        raise
    except KeyboardInterrupt:  # before the reactor ran
        raise SystemExit(_report_interruption()) from None


def _report_interruption() -> int:
    with suppress(Exception):
        _flush_stdout()
    sys.stderr.write("\nInterrupted\n" if line_open() else "Interrupted\n")
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy, so that every module shares its classes.
    from mirrorbits.control.cli import main as _main

    _main()
