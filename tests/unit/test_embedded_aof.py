"""Which data directories a private redis-server may start with ``--appendonly yes`` on."""

from __future__ import annotations

from pathlib import Path

from mirrorbits.embedded_aof import has_append_only_file


def test_only_a_directory_with_an_append_only_file_starts_with_it(tmp_path: Path) -> None:
    assert not has_append_only_file(str(tmp_path / "missing"))
    (tmp_path / "dump.rdb").write_bytes(b"REDIS0009")
    assert not has_append_only_file(str(tmp_path))  # the snapshot would be ignored
    (tmp_path / "appendonlydir").mkdir()
    (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").write_bytes(b"")
    assert not has_append_only_file(str(tmp_path))  # Redis 7, its first rewrite unfinished
    (tmp_path / "appendonlydir" / "appendonly.aof.manifest").write_text(
        "file appendonly.aof.1.base.rdb seq 1 type b\n")
    assert has_append_only_file(str(tmp_path))


def test_redis_6_file_counts_once_written(tmp_path: Path) -> None:
    (tmp_path / "appendonly.aof").write_bytes(b"")  # created empty, filled by its rewrite
    assert not has_append_only_file(str(tmp_path))
    (tmp_path / "appendonly.aof").write_bytes(b"REDIS0009")
    assert has_append_only_file(str(tmp_path))
