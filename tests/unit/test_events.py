"""MIRRORLOGS_<id> entries: the JSON the reference stores and the ``logs`` text (spec §13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirrorbits.encoding import parse_rfc3339
from mirrorbits.store import events as ev

FIXTURE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "reference_redis.json").read_text("utf-8")
)
NS = 1_000_000_000
NOW = 1795567027 * NS + 746651119  # 2026-11-25T00:37:07.746651119Z


def _at(stamp: str) -> int:
    ns = parse_rfc3339(stamp)
    assert ns is not None
    return ns


def test_constructors_reproduce_the_reference_entries() -> None:
    stored = FIXTURE["logs"]["MIRRORLOGS_1"]
    stamps = [_at(json.loads(item)["Timestamp"]) for item in stored]
    built = [
        ev.added_event(1, stamps[0]),
        ev.edited_event(1, stamps[1]),
        ev.scan_started_event(1, ev.SCANNER_RSYNC, stamps[2]),
        ev.scan_completed_event(1, 11, 8, 0, 0, stamps[3]),
        ev.enabled_event(1, stamps[4]),
        ev.state_changed_event(1, ev.PROTO_HTTP, True, "", stamps[5]),
        ev.state_changed_event(1, ev.PROTO_HTTPS, True, "", stamps[6]),
    ]
    assert built == stored


def test_exact_texts() -> None:
    assert ev.added_event(1, NOW) == (
        '{"Type":2,"MirrorID":1,"Timestamp":"2026-11-25T00:37:07.746651119Z"}'
    )
    assert ev.disabled_event(12, 1795567027 * NS) == (
        '{"Type":5,"MirrorID":12,"Timestamp":"2026-11-25T00:37:07Z"}'
    )
    assert ev.error_event(3, "dial <tcp> & co", NOW) == (
        '{"Type":1,"MirrorID":3,"Timestamp":"2026-11-25T00:37:07.746651119Z",'
        '"Err":"dial \\u003ctcp\\u003e \\u0026 co"}'
    )
    assert ev.state_changed_event(2, ev.PROTO_HTTPS, False, "Unreachable", NOW) == (
        '{"Type":6,"MirrorID":2,"Timestamp":"2026-11-25T00:37:07.746651119Z",'
        '"Proto":2,"Up":false,"Reason":"Unreachable"}'
    )
    assert ev.scan_started_event(2, ev.SCANNER_FTP, NOW).endswith(',"Typ":1}')
    assert ev.scan_completed_event(2, 10, 8, 1, -3_600_000, NOW).endswith(
        '"FilesIndexed":10,"KnownIndexed":8,"Removed":1,"TZOffset":-3600000}'
    )


def test_render_reference_log_of_madrid() -> None:
    lines = []
    for item in FIXTURE["logs"]["MIRRORLOGS_1"]:
        rendered = ev.render_event(item)
        assert rendered is not None
        lines.append(ev.format_log_line(*rendered))
    expected = FIXTURE["logs_madrid_stdout"].splitlines()[1:]
    assert lines == expected


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        (ev.error_event(1, "boom", NOW), "Error: boom"),
        (ev.disabled_event(1, NOW), "Mirror disabled"),
        (ev.state_changed_event(1, ev.PROTO_HTTPS, False, "Unreachable", NOW),
         "HTTPS mirror is down: Unreachable"),
        (ev.state_changed_event(1, ev.PROTO_HTTP, False, "", NOW), "HTTP mirror is down"),
        (ev.state_changed_event(1, ev.PROTO_UNDEFINED, True, "", NOW), "Mirror is up"),
        (ev.scan_started_event(1, ev.SCANNER_FTP, NOW), "FTP scan started"),
        (ev.scan_started_event(1, ev.SCANNER_HTTP, NOW), "HTTP scan started"),
        (ev.scan_completed_event(1, 5, 4, 2, 0, NOW),
         "Scan completed: 5 files (4 known), 2 removed"),
        (ev.scan_completed_event(1, 5, 4, 2, -3_600_000, NOW),
         "Scan completed: 5 files (4 known), 2 removed (corrected timezone offset: -1h0m0s)"),
        (ev.scan_completed_event(1, 5, 4, 2, 1500, NOW),
         "Scan completed: 5 files (4 known), 2 removed (corrected timezone offset: 1.5s)"),
    ],
)
def test_render_texts(entry: str, text: str) -> None:
    assert ev.render_event(entry) == (NOW, text)


def test_render_tolerates_what_go_tolerates() -> None:
    # Missing fields are zero values; names match case-insensitively; other zones convert to UTC.
    assert ev.render_event('{"Type":2}') == (None, "Mirror added")
    assert ev.render_event('{"type":6,"proto":1,"up":true}') == (None, "HTTP mirror is up")
    rendered = ev.render_event('{"Type":4,"Timestamp":"2026-11-25T02:37:07+02:00"}')
    assert rendered == (1795567027 * NS, "Mirror enabled")
    assert ev.format_log_line(*rendered) == "2026-11-25 00:37:07 UTC: Mirror enabled"


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "not json",
        "[1,2]",
        '{"Type":"2"}',
        '{"Type":2.5}',
        '{"Type":99}',
        '{"Type":2,"Timestamp":"yesterday"}',
        '{"Type":1,"Err":42}',
        '{"Type":6,"Up":"yes"}',
        '{"Type":8,"FilesIndexed":true}',
    ],
)
def test_unreadable_entries_are_skipped(entry: str) -> None:
    assert ev.render_event(entry) is None


def test_log_line_format() -> None:
    assert ev.format_log_line(NOW, "Mirror added") == "2026-11-25 00:37:07 UTC: Mirror added"
    assert ev.format_log_line(None, "x") == "0001-01-01 00:00:00 UTC: x"
