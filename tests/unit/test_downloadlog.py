"""The download log: exact line formats (spec §12.2) and the buffered file writer."""

from __future__ import annotations

import contextlib
import os
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from mirrorbits.web.downloadlog import DownloadLog, format_download_line, header_lines
from tests.logcapture import captured_log

BINARY = "Built with CPython 3.11.7 for linux/x86_64"


def f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


@pytest.fixture
def tz_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time = UTC, as in the recording of the reference."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       micro: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC).timestamp()


def line(now: float, kind: str = "JSON", status: int = 200, method: str = "GET",
         path: str = "/ANNOUNCE.md", ip: str = "100.96.1.10", mirror: str | None = "valencia",
         fallback: bool = False, mirror_asn: int = 0, client_asn: int = 65201,
         distance: float = 0.0, countries: tuple[str, ...] = ("ES",),
         error: str | None = None) -> str:
    return format_download_line(now, kind, status, method, path, ip, mirror, fallback, mirror_asn,
                                client_asn, distance, list(countries), error)


# Lines recorded from the reference (conformance/expected/downloads-log.json).
RECORDED = [
    (
        line(at(2026, 11, 25, 1, 55, 1, 178070), distance=f32(760.47)),
        '2026/11/25 01:55:01.178070 JSON 200 GET "/ANNOUNCE.md" ip:100.96.1.10 mirror:valencia'
        " asn:0 distance:760.47km countries:ES",
    ),
    (   # same ASN > 0: "sameasn:"
        line(at(2026, 11, 25, 1, 55, 8, 319977), kind="REDIRECT", status=302, ip="100.96.8.10",
             mirror="saopaulo", mirror_asn=65107, client_asn=65107, distance=f32(1674.87),
             countries=("BR",)),
        '2026/11/25 01:55:08.319977 REDIRECT 302 GET "/ANNOUNCE.md" ip:100.96.8.10'
        " mirror:saopaulo sameasn:65107 distance:1674.87km countries:BR",
    ),
    (   # ASN 0 on both sides is not "same" in the log (README 6.1 item 7)
        line(at(2026, 11, 25, 1, 55, 1, 225234), path="/pool/main/tool_2.4.1_amd64.deb",
             ip="100.96.9.10", mirror_asn=0, client_asn=0, distance=f32(9365.171)),
        '2026/11/25 01:55:01.225234 JSON 200 GET "/pool/main/tool_2.4.1_amd64.deb"'
        " ip:100.96.9.10 mirror:valencia asn:0 distance:9365.17km countries:ES",
    ),
    (   # several countries; the mirror's ASN is shown
        line(at(2026, 11, 25, 1, 55, 1, 181575), path="/media/install image.img",
             mirror="warsaw", mirror_asn=65105, distance=f32(2759.04),
             countries=("PL", "CZ", "SK")),
        '2026/11/25 01:55:01.181575 JSON 200 GET "/media/install image.img" ip:100.96.1.10'
        " mirror:warsaw asn:65105 distance:2759.04km countries:PL,CZ,SK",
    ),
    (   # non-ASCII path, fallback
        line(at(2026, 11, 25, 1, 55, 1, 181938), path="/manuals/guía-rápida.pdf",
             mirror="fallback0", fallback=True),
        '2026/11/25 01:55:01.181938 JSON 200 GET "/manuals/guía-rápida.pdf" ip:100.96.1.10'
        " mirror:fallback0 fallback:true asn:0 distance:0.00km countries:ES",
    ),
    (   # the root's fallback redirect is logged with an empty path
        line(at(2026, 11, 25, 1, 55, 1, 242733), kind="REDIRECT", status=302, path="",
             ip="100.96.6.10", mirror="fallback2", fallback=True, client_asn=65206,
             countries=("ZA",)),
        '2026/11/25 01:55:01.242733 REDIRECT 302 GET "" ip:100.96.6.10 mirror:fallback2'
        " fallback:true asn:0 distance:0.00km countries:ZA",
    ),
    (   # HEAD, IPv6 client
        line(at(2026, 11, 25, 1, 55, 1, 241395), kind="REDIRECT", status=302, method="HEAD",
             ip="2001:db8:cafe::20", mirror="johannesburg", mirror_asn=65106,
             distance=f32(1261.58), countries=("ZA", "BW", "LS")),
        '2026/11/25 01:55:01.241395 REDIRECT 302 HEAD "/ANNOUNCE.md" ip:2001:db8:cafe::20'
        " mirror:johannesburg asn:65106 distance:1261.58km countries:ZA,BW,LS",
    ),
]


@pytest.mark.usefixtures("tz_utc")
@pytest.mark.parametrize(("produced", "expected"), RECORDED)
def test_recorded_lines(produced: str, expected: str) -> None:
    assert produced == expected


@pytest.mark.usefixtures("tz_utc")
def test_error_shapes() -> None:
    now = at(2026, 11, 25, 1, 2, 3, 4)
    prefix = '2026/11/25 01:02:03.000004 REDIRECT {} GET "/a.txt" ip:10.0.0.1'

    def shaped(status: int, mirror: str | None, error: str | None) -> str:
        return line(now, kind="REDIRECT", status=status, path="/a.txt", ip="10.0.0.1",
                    mirror=mirror, error=error)

    assert shaped(404, None, "not found") == prefix.format(404)
    assert shaped(500, "m1", "boom") == prefix.format(500) + " mirror:m1 error:boom"
    assert shaped(500, None, "boom") == prefix.format(500) + " mirror:unknown error:boom"
    assert shaped(503, None, "no mirror") == prefix.format(503) + " error:no mirror"
    assert shaped(503, None, None) == prefix.format(503) + " error:<unknown>"
    # 302 without any mirror is an error line too
    assert shaped(302, None, None) == prefix.format(302) + " error:<unknown>"


@pytest.mark.usefixtures("tz_utc")
def test_control_characters_in_paths_cannot_forge_lines() -> None:
    produced = line(at(2026, 1, 1), path="/a\nb\x1b.txt")
    assert "\n" not in produced
    assert '"/a\\nb\\x1b.txt"' in produced


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False)
       | st.integers(0, 4_000_000_000).map(lambda s: s + 0.9999995)
       | st.integers(0, 4_000_000_000).map(lambda s: s + 0.0000005))
def test_stamps_equal_datetime_formatting(now: float) -> None:
    """Formatted once per second, yet equal to datetime's (microseconds rounded half-even)."""
    from mirrorbits.web.downloadlog import _stamp

    expected = datetime.fromtimestamp(now).strftime("%Y/%m/%d %H:%M:%S.%f")
    assert _stamp(now) == expected
    assert _stamp(now) == expected  # from the per-second memo


def test_printable_and_escaped_paths_in_one_second() -> None:
    assert '"/plain file.iso"' in line(at(2026, 1, 1), path="/plain file.iso")
    assert '"/caf\u00e9\\t.iso"' in line(at(2026, 1, 1), path="/caf\u00e9\t.iso")


def test_prefix_is_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "CET-1")  # UTC+1, no tzdata needed
    time.tzset()
    try:
        produced = line(at(2026, 11, 25, 23, 30, 0, 500000))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert produced.startswith("2026/11/26 00:30:00.500000 JSON 200 ")


@pytest.mark.usefixtures("tz_utc")
def test_header_lines() -> None:
    assert header_lines(at(2026, 11, 25, 1, 54, 39), "vm", BINARY) == [
        "# Log file created at: 2026/11/25 01:54:39",
        "# Running on machine: vm",
        f"# Binary: {BINARY}",
    ]


HEADER = (
    "# Log file created at: 2026/11/25 01:54:39\n# Running on machine: vm\n"
    f"# Binary: {BINARY}\n"
)


def started(log_dir: Path | str) -> tuple[DownloadLog, Clock]:
    clock = Clock()
    clock.advance(at(2026, 11, 25, 1, 54, 39))
    writer = DownloadLog(str(log_dir), clock, "vm", BINARY)
    writer.startService()
    return writer, clock


def open_paths() -> list[str]:
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


@pytest.mark.usefixtures("tz_utc")
def test_new_file_gets_the_header_and_lines_are_written_once_a_second(tmp_path: Path) -> None:
    writer, clock = started(tmp_path)
    log_file = tmp_path / "downloads.log"
    assert writer.name == "downloadlog"
    assert log_file.read_text() == HEADER
    assert oct(log_file.stat().st_mode & 0o777) == oct(0o664 & ~current_umask())
    writer.write_line("first")
    writer.write_line("second")
    clock.advance(0.9)
    assert log_file.read_text() == HEADER  # nothing touches the disk per request
    clock.advance(0.1)
    assert log_file.read_text() == HEADER + "first\nsecond\n"
    writer.write_line("guía")
    writer.stopService()  # flushes what is left and closes the file
    assert log_file.read_text(encoding="utf-8") == HEADER + "first\nsecond\nguía\n"
    assert str(log_file) not in open_paths()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.usefixtures("tz_utc")
def test_existing_file_is_appended_without_header(tmp_path: Path) -> None:
    (tmp_path / "downloads.log").write_text("old line\n")
    writer, clock = started(tmp_path)
    writer.write_line("new line")
    clock.advance(1)
    writer.stopService()
    assert (tmp_path / "downloads.log").read_text() == "old line\nnew line\n"


@pytest.mark.usefixtures("tz_utc")
def test_empty_file_gets_the_header(tmp_path: Path) -> None:
    (tmp_path / "downloads.log").write_text("")
    writer, _ = started(tmp_path)
    writer.stopService()
    assert (tmp_path / "downloads.log").read_text() == HEADER


@pytest.mark.usefixtures("tz_utc")
def test_reopen_after_rotation_closes_the_old_file(tmp_path: Path) -> None:
    writer, clock = started(tmp_path)
    log_file = tmp_path / "downloads.log"
    rotated = tmp_path / "downloads.log.1"
    writer.write_line("before")
    log_file.rename(rotated)
    before = len(open_paths())
    writer.reopen()
    assert rotated.read_text() == HEADER + "before\n"  # buffered lines go to the old file
    assert str(rotated) not in open_paths()  # fix of §20 item 16: no descriptor leak
    assert len(open_paths()) == before
    assert log_file.read_text() == HEADER  # the new file starts with its header
    writer.write_line("after")
    clock.advance(1)
    writer.stopService()
    assert log_file.read_text() == HEADER + "after\n"
    assert rotated.read_text() == HEADER + "before\n"


@pytest.mark.usefixtures("tz_utc")
def test_a_full_disk_is_said_once_then_when_it_works_again(tmp_path: Path) -> None:
    """/dev/full answers every write with ENOSPC: one line while it lasts, not one a second."""
    (tmp_path / "downloads.log").symlink_to("/dev/full")
    with captured_log("mirrorbits.web.downloadlog") as said:
        writer, clock = started(tmp_path)
        for second in range(3):
            writer.write_line(f"lost {second}")
            clock.advance(1)
        assert said == [f"Cannot write the download log {tmp_path}/downloads.log: [Errno 28] "
                        "No space left on device (lines may be lost until it works again)"]
        (tmp_path / "downloads.log").unlink()
        writer.reopen()
        writer.write_line("kept")
        clock.advance(1)
        writer.stopService()
    assert said[1:] == [f"Download log {tmp_path}/downloads.log written again"]
    assert (tmp_path / "downloads.log").read_text().endswith("\nkept\n")


@pytest.mark.usefixtures("tz_utc")
def test_missing_directory_is_retried(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    writer, clock = started(log_dir)
    writer.write_line("kept")
    clock.advance(1)
    assert not log_dir.exists()
    log_dir.mkdir()
    clock.advance(1)
    writer.stopService()
    content = (log_dir / "downloads.log").read_text()
    assert content.startswith("# Log file created at: 2026/11/25 01:54:41\n")
    assert content.endswith("\nkept\n")


def test_disabled_without_log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    writer, clock = started("")
    writer.write_line("ignored")
    clock.advance(5)
    writer.reopen()
    writer.stopService()
    assert list(tmp_path.iterdir()) == []
    assert clock.getDelayedCalls() == []
