"""``mirrorbits-ctl``: the command-line client of the daemon's control channel (spec §14).

Runs one command under the reactor and turns every outcome into an exit code: usage errors
2, failures 1, an interruption (Ctrl-C, or SIGTERM) 130, a closed output pipe 141.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import suppress

from twisted.internet.task import react

from mirrorbits.control import commands as c
from mirrorbits.ctl.command_line import Invocation, parse_command_line
from mirrorbits.ctl.exits import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, Exit
from mirrorbits.ctl.output import PROGRAM
from mirrorbits.ctl.prompt import line_open
from mirrorbits.ctl.session import Session, ask_password, connect, target_text
from mirrorbits.ctl.table import COMMANDS
from mirrorbits.reactors import ICommandReactor, IConnectingReactor


async def run(reactor: IConnectingReactor, invocation: Invocation) -> None:
    """Connect, check the password with ``Ping``, run the command, disconnect."""
    password = invocation.password
    if not password and invocation.ask_password:
        password = ask_password()
    target = target_text(invocation.host, invocation.port)
    protocol = await connect(reactor, invocation.host, invocation.port, invocation.tls)
    session = Session(reactor, protocol, password, target, tls=invocation.tls is not None,
                      reconnect=lambda: connect(reactor, invocation.host, invocation.port,
                                                invocation.tls))
    try:
        await session.call(c.Ping)
        await invocation.command.run(session, invocation)
    finally:
        if session.protocol.transport is not None:
            session.protocol.transport.loseConnection()


def _emit(error: Exit) -> None:
    if error.stdout:
        sys.stdout.write(error.stdout)
    if error.stderr:
        _flush_stdout()
        sys.stderr.write(error.stderr)


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


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

    async def entry(reactor: ICommandReactor) -> None:
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
