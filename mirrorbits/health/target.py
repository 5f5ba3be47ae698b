"""Choosing the file a health check asks a mirror for (fixes reference bug §20.12)."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from mirrorbits.store import keys

CANDIDATES = 5  # files drawn from HANDLEDFILES at once


@frozen
class Target:
    """A file the mirror held at its last scan and that still exists locally."""

    path: str
    size: int | None


async def pick_target(client: Any, mirror_id: int, exclude: str = "") -> Target | None:
    """A random file of ``HANDLEDFILES_<id>`` still present in the local repository.

    ``None`` when the mirror has no such file (never scanned, or all drawn files were
    deleted locally since its scan): the caller checks again at the next interval.
    """
    drawn = await client.execute_command("SRANDMEMBER", keys.handled_files(mirror_id),
                                         str(CANDIDATES))
    for member in drawn or ():
        path = _text(member)
        if path == exclude:
            continue
        size = await client.hget(keys.file(path), "size")
        if size is not None:
            return Target(path, _int_or_none(size))
    return None


async def still_exists(client: Any, path: str) -> bool:
    """Whether ``path`` is still part of the local repository."""
    return bool(int(await client.exists(keys.file(path))))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(_text(value))
    except ValueError:
        return None
