"""Terminal output and yes/no questions of ``mirrorbits-ctl``.

A closed or empty standard input never breaks a question (the reference crashed on it, spec
§20 item 7): end of input always means "no"; an empty line (just Enter) means the default.
"""

from __future__ import annotations

import sys
from typing import TextIO


def out(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` to standard output (or ``stream``) right away."""
    target = stream if stream is not None else sys.stdout
    target.write(text)
    target.flush()


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
    out(question, stdout)
    source = stdin if stdin is not None else sys.stdin
    try:
        line = source.readline()
    except (OSError, ValueError, KeyboardInterrupt):
        line = ""
    if not line.endswith("\n"):
        out("\n", stdout)  # keep later output off the question's line
    return answer_means_yes(line, default)
