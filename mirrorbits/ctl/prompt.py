"""Terminal output and yes/no questions of ``mirrorbits-ctl``.

A closed or empty standard input never breaks a question (the reference crashed on it, spec
§20 item 7): end of input always means "no"; an empty line (just Enter) means the default.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

_line_open = False


def out(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` to standard output (or ``stream``) right away."""
    global _line_open
    target = stream if stream is not None else sys.stdout
    target.write(text)
    target.flush()
    if stream is None and text:
        _line_open = not text.endswith("\n")


def line_open() -> bool:
    """Whether the last text :func:`out` wrote to stdout left its line unfinished."""
    return _line_open


def answer_means_yes(line: str, default: bool) -> bool:
    """Interpret one line read after a ``[y/N]`` or ``[Y/n]`` question.

    ``""`` (end of input) is "no"; a blank line is ``default``; otherwise the first
    non-blank character decides (``y``/``Y`` yes, anything else no when the default is no;
    ``n``/``N`` no, anything else yes when the default is yes).
    """
    if line == "":
        return False
    text = line.strip()
    if not text:
        return default
    if default:
        return text[0] not in "nN"
    return text[0] in "yY"


def confirm(
    question: str,
    default: bool = False,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> bool:
    """Ask ``question`` (no newline after it) and read one line of answer."""
    source = stdin if stdin is not None else sys.stdin
    try:
        with interruptible():  # before the question: once it is shown, Ctrl-C works
            out(question, stdout)
            line = source.readline()
    except (OSError, ValueError, KeyboardInterrupt):
        line = ""
    if not line.endswith("\n"):
        out("\n", stdout)  # keep later output off the question's line
    return answer_means_yes(line, default)


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C raises :class:`KeyboardInterrupt` while blocking on the terminal.

    The reactor's own handler only asks the reactor to stop, which does nothing while the
    process waits for a line.
    """
    with _sigint(signal.default_int_handler):
        yield


@contextmanager
def ignoring_interrupts() -> Iterator[None]:
    """Ctrl-C does nothing here (meant for the editor in the foreground, which gets it too).

    A Python handler, not ``SIG_IGN``: programs started meanwhile get the default action.
    """
    with _sigint(lambda signum, frame: None):
        yield


@contextmanager
def _sigint(handler: Callable[[int, FrameType | None], object]) -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
