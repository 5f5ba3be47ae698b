"""Files replaced at once: readers see the old content or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Final

FILE_MODE: Final = 0o644


def replace_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` at once: a temporary file beside it, renamed over it."""
    directory, name = os.path.split(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
