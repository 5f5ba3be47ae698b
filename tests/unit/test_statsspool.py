"""The spool file of statistics batches (mirrorbits.statsspool): whole or refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrorbits import statsspool
from mirrorbits.statsspool import SpooledBatch, SpoolError

ARGUMENTS = (b"STATS_FILE", b"STATS_MIRROR", b"STATS_MIRROR_BYTES", b"2",
             b"10\x001\x00/caf\xe9.iso\x00", b"3600", b"", b"_2026", b"_2026_11", b"_2026_11_25")


def test_a_saved_file_gives_back_its_batches_byte_for_byte(tmp_path: Path) -> None:
    batches = [SpooledBatch("node:1", 2, ARGUMENTS), SpooledBatch("node:2", 0, ARGUMENTS[:6])]
    path = statsspool.save(str(tmp_path / "made"), batches)
    name = os.path.basename(path)
    assert name.startswith(f"stats-{os.getpid()}-") and name.endswith(".json")
    assert os.listdir(tmp_path / "made") == [name]  # no temporary file left
    assert statsspool.spooled_files(str(tmp_path / "made")) == [path]
    assert statsspool.load(path) == batches
    assert statsspool.save(str(tmp_path / "made"), batches) != path  # one file per save
    assert statsspool.spooled_files(str(tmp_path / "nowhere")) == []


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"[]", "not a statistics spool file"),
    (b'{"format": "mirrorbits-stats-spool", "version": 9}', "unknown version 9"),
    (statsspool.encode([SpooledBatch("n:1", 1, ARGUMENTS)]).replace(b'"n:1"', b'"n:2"'),
     "checksum mismatch"),
    (statsspool.encode([SpooledBatch("n:1", 1, (b"FLUSHALL",))]),
     "a batch's arguments are not those of the statistics script"),
    (statsspool.encode([SpooledBatch("", 1, ARGUMENTS)]),
     "a batch lacks its id, count or arguments"),
])
def test_a_damaged_file_is_refused_with_its_reason(content: bytes, reason: str) -> None:
    with pytest.raises(SpoolError) as raised:
        statsspool.decode(content)
    assert str(raised.value) == reason
