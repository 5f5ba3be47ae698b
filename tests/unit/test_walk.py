"""The file-system walk and the hashing of the local repository scan."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mirrorbits.model import FileInfo
from mirrorbits.scan.walk import (
    LocalFile,
    ScanAborted,
    WalkProblem,
    fs_path,
    hash_file,
    indexed,
    needs_hashing,
    walk_repository,
)

NS = 1_000_000_000


def make_file(root: Path, relative: str, content: bytes, mtime_ns: int) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    make_file(root, "b.txt", b"bee", 1_700_000_000 * NS + 123_456_789)
    make_file(root, "a.txt", b"", 1_600_000_000 * NS)
    make_file(root, ".hidden", b"dot", 1_650_000_000 * NS + 1)
    make_file(root, "dir/sub/deep.bin", b"\x00" * 10, 1_500_000_000 * NS + 500)
    make_file(root, "dir.txt", b"after dir", 1_500_000_001 * NS)
    make_file(root, "dir/éte space.iso", b"x" * 3, 1_400_000_000 * NS + 999_999_999)
    os.symlink("b.txt", root / "link-to-file")
    os.symlink("dir", root / "link-to-dir")
    os.symlink("missing", root / "dangling")
    os.mkfifo(root / "fifo")
    (root / "empty-dir").mkdir()
    return root


def test_walk_lists_regular_files_in_go_order(tree: Path) -> None:
    result = walk_repository(str(tree))
    assert result.problems == ()
    assert result.files == (
        LocalFile("/.hidden", 3, 1_650_000_000 * NS + 1),
        LocalFile("/a.txt", 0, 1_600_000_000 * NS),
        LocalFile("/b.txt", 3, 1_700_000_000 * NS + 123_456_789),
        # "dir" sorts before "dir.txt": its subtree comes first, as in filepath.Walk.
        LocalFile("/dir/sub/deep.bin", 10, 1_500_000_000 * NS + 500),
        LocalFile("/dir/éte space.iso", 3, 1_400_000_000 * NS + 999_999_999),
        LocalFile("/dir.txt", 9, 1_500_000_001 * NS),
    )
    assert result.empty_directories == ("/empty-dir",)  # a mount point not mounted looks so


def test_walk_sorts_names_by_bytes(tmp_path: Path) -> None:
    for name in ("é", "Z", "a", "_", "~"):
        make_file(tmp_path, name, b"", NS)
    paths = [f.path for f in walk_repository(str(tmp_path)).files]
    assert paths == ["/Z", "/_", "/a", "/~", "/é"]


def test_walk_of_an_empty_tree(tmp_path: Path) -> None:
    (tmp_path / "only-a-dir").mkdir()
    walked = walk_repository(str(tmp_path))
    assert (walked.files, walked.empty_directories) == ((), ("/only-a-dir",))
    assert walk_repository(str(tmp_path / "only-a-dir")).empty_directories == ()  # the root


def test_walk_of_a_missing_repository(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as caught:
        walk_repository(str(missing))
    assert str(caught.value) == f"{missing}: No such file or directory"


def test_walk_of_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    make_file(tmp_path, "file", b"", NS)
    with pytest.raises(NotADirectoryError):
        walk_repository(str(tmp_path / "file"))


def test_walk_skips_names_that_are_not_utf8(tmp_path: Path) -> None:
    make_file(tmp_path, "good", b"", NS)
    root = os.fsencode(tmp_path)
    with open(os.path.join(root, b"bad-\xff"), "wb"):
        pass
    os.mkdir(os.path.join(root, b"bad-dir-\xfe"))
    with open(os.path.join(root, b"bad-dir-\xfe", b"inside"), "wb"):
        pass
    result = walk_repository(str(tmp_path))
    assert [f.path for f in result.files] == ["/good"]
    assert result.problems == (
        WalkProblem("/bad-dir-\\xfe", "name is not valid UTF-8"),
        WalkProblem("/bad-\\xff", "name is not valid UTF-8"),
    )


@pytest.fixture
def shared_tree() -> Iterator[Path]:
    """A tree under /tmp that an unprivileged user can traverse (pytest's tmp is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="mirrorbits-walk-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for directory, _, _ in os.walk(root):
            os.chmod(directory, 0o755)
        shutil.rmtree(root)


def walk_to_json(root: Path) -> dict[str, Any]:
    try:
        result = walk_repository(str(root))
    except OSError as err:
        return {"error": str(err)}
    return {"files": [[f.path] for f in result.files],
            "problems": [[p.path, p.reason] for p in result.problems]}


def walk_as_unprivileged(root: Path) -> dict[str, Any]:
    """Walk *root* as ``nobody`` when running as root (root reads everything)."""
    if os.geteuid() != 0:
        return walk_to_json(root)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child process
        status = 1
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(walk_to_json(root)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    decoded: dict[str, Any] = json.loads(data)
    return decoded


def test_walk_skips_unreadable_directories(shared_tree: Path) -> None:
    make_file(shared_tree, "a/visible", b"1", NS)
    make_file(shared_tree, "b-locked/hidden", b"2", NS)
    make_file(shared_tree, "c", b"3", NS)
    for directory in ("a",):
        (shared_tree / directory).chmod(0o755)
    (shared_tree / "b-locked").chmod(0o000)
    result = walk_as_unprivileged(shared_tree)
    assert result == {
        "files": [["/a/visible"], ["/c"]],
        "problems": [["/b-locked", "Permission denied"]],
    }


def test_walk_of_an_unreadable_repository_fails(shared_tree: Path) -> None:
    make_file(shared_tree, "repo/hidden", b"1", NS)
    (shared_tree / "repo").chmod(0o000)
    result = walk_as_unprivileged(shared_tree / "repo")
    assert result == {"error": f"[Errno 13] {shared_tree}/repo: Permission denied"}


def test_walk_follows_a_repository_that_is_a_link(tmp_path: Path) -> None:
    make_file(tmp_path, "real/f", b"1", NS)
    os.symlink("real", tmp_path / "link")
    assert walk_repository(str(tmp_path / "link")).files == (LocalFile("/f", 1, NS),)


def test_walk_stops_when_asked(tree: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(ScanAborted, match="scan aborted"):
        walk_repository(str(tree), stop)


def test_hash_file_reads_once_for_every_algorithm(tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    path = make_file(tmp_path, "big", content, NS)
    assert hash_file(str(path), ("md5", "sha1", "sha256")) == {
        "sha1": hashlib.sha1(content).hexdigest(),
        "sha256": hashlib.sha256(content).hexdigest(),
        "md5": hashlib.md5(content).hexdigest(),
    }
    assert hash_file(str(path), ("sha256",)) == {"sha256": hashlib.sha256(content).hexdigest()}
    assert hash_file(str(path), ()) == {}


def test_hash_of_an_empty_file(tmp_path: Path) -> None:
    path = make_file(tmp_path, "empty", b"", NS)
    assert hash_file(path.as_posix(), ("sha256", "md5")) == {
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "md5": "d41d8cd98f00b204e9800998ecf8427e",
    }


def test_hash_file_errors_and_abort(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_file(str(tmp_path / "gone"), ("sha1",))
    path = make_file(tmp_path, "f", b"data", NS)
    stop = threading.Event()
    stop.set()
    with pytest.raises(ScanAborted):
        hash_file(str(path), ("sha1",), stop)


def test_fs_path_joins_repository_and_path(tree: Path) -> None:
    path = fs_path(str(tree), "/dir/éte space.iso")
    assert path == os.fsencode(tree / "dir" / "éte space.iso")
    assert Path(os.fsdecode(path)).read_bytes() == b"xxx"


# --- the rehash decision --------------------------------------------------------------------

LOCAL = LocalFile("/f", 5, 7 * NS + 1)
STORED = FileInfo("/f", 5, 7 * NS + 1, sha1="s1", sha256="s256", md5="m5")


@pytest.mark.parametrize(
    ("previous", "enabled", "rehash", "expected"),
    [
        (STORED, ("sha256",), False, False),
        (STORED, ("sha1", "sha256", "md5"), False, False),
        (STORED, (), False, False),
        (STORED, ("sha256",), True, True),
        (None, (), False, True),
        (attrs.evolve(STORED, size=6), ("sha256",), False, True),
        (attrs.evolve(STORED, mod_time_ns=7 * NS), ("sha256",), False, True),
        (attrs.evolve(STORED, mod_time_ns=None), ("sha256",), False, True),
        (attrs.evolve(STORED, md5=""), ("sha256",), False, False),
        (attrs.evolve(STORED, md5=""), ("sha256", "md5"), False, True),
    ],
)
def test_needs_hashing(
    previous: FileInfo | None, enabled: tuple[str, ...], rehash: bool, expected: bool
) -> None:
    assert needs_hashing(LOCAL, previous, enabled, rehash) is expected


def test_indexed_record() -> None:
    assert indexed(LOCAL, sha256="abc") == FileInfo("/f", 5, 7 * NS + 1, "", "abc", "")
