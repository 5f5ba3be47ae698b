"""Counted downloads that a stopping process could not write to Redis, kept on disk.

A process that stops while Redis is unreachable (``SIGTERM``, ``systemctl restart``, the
process a seamless upgrade retires) writes the batches it still holds to one file of
``StatsSpoolDir``; the daemon that starts next (or the same one, still running) sends them
once Redis takes writes, then deletes the file. Each batch keeps its id, so a batch that did
reach Redis before the stop (a lost reply) is recognised and not counted twice, as long as
its record lives (``statsflush.BATCH_TTL``, an hour).

The file: one JSON object, ``{"batches": [{"id": ..., "downloads": N, "arguments":
[base64, ...]}, ...]}``, written to a temporary name, synced, then renamed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable

from attrs import frozen

PREFIX = "stats-"
SUFFIX = ".json"


@frozen
class SpooledBatch:
    batch_id: str
    downloads: int
    arguments: list[bytes]


def write_spool(directory: str, batches: Iterable[SpooledBatch]) -> str:
    """Write ``batches`` to a new file of ``directory``; its path. OSError on failure."""
    record = {"batches": [
        {"id": batch.batch_id, "downloads": batch.downloads,
         "arguments": [base64.b64encode(part).decode("ascii") for part in batch.arguments]}
        for batch in batches]}
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
    path = os.path.join(directory, name)
    temporary = os.path.join(directory, f".{name}.tmp")
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(record, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    return path


def spooled_files(directory: str) -> list[str]:
    """The spool files of ``directory``, oldest name first; none if it cannot be read."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, name) for name in sorted(names)
            if name.startswith(PREFIX) and name.endswith(SUFFIX)]


def read_spool(path: str) -> list[SpooledBatch]:
    """The batches of one spool file; ValueError if it is not one, OSError."""
    with open(path, encoding="utf-8") as stream:
        record = json.load(stream)
    try:
        return [SpooledBatch(str(item["id"]), int(item["downloads"]),
                             [base64.b64decode(part, validate=True) for part in item["arguments"]])
                for item in record["batches"]]
    except (KeyError, TypeError) as err:
        raise ValueError(f"not a statistics spool file ({err})") from None
