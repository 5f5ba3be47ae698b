"""Loaded by a daemon under test (``PYTHONPATH``): records file accesses through audit hooks.

Writes one line per event to ``$MIRRORBITS_AUDIT_LOG`` for every named file opened for writing,
and for any event whose arguments mention ``$MIRRORBITS_AUDIT_MARKER`` (opens, listings,
renames, removals, spawned programs).
"""

import os
import sys

_LOG = os.environ.get("MIRRORBITS_AUDIT_LOG", "")
_MARKER = os.environ.get("MIRRORBITS_AUDIT_MARKER", "")
_EVENTS = ("open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir",
           "os.chmod", "os.symlink", "os.link", "os.truncate", "os.posix_spawn", "os.exec",
           "subprocess.Popen", "shutil.copyfile", "shutil.rmtree", "os.walk")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _writes(args: tuple[object, ...]) -> bool:
    """Whether an ``open`` event writes a named file (not an inherited descriptor)."""
    if not args or not isinstance(args[0], str | bytes):
        return False
    mode, flags = (args[1], args[2]) if len(args) >= 3 else (None, 0)
    if isinstance(mode, str) and any(letter in mode for letter in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


if _LOG and _MARKER:
    _fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _hook(event: str, args: tuple[object, ...]) -> None:
        if event not in _EVENTS:
            return
        text = repr(args)
        if _MARKER in text or (event == "open" and _writes(args)):
            os.write(_fd, f"{event} {text}\n".encode("utf-8", "backslashreplace"))

    sys.addaudithook(_hook)
