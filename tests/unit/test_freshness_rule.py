"""What a mirror's answer to HEAD must show for the new version to be recorded."""

from __future__ import annotations

from mirrorbits.health.freshness import MAX_DELAY, holds_version, next_delay
from mirrorbits.model import FileInfo

INFO = FileInfo(path="/a.bin", size=200, mod_time_ns=1_687_253_400_400_000_000)
SECOND = "Tue, 20 Jun 2023 09:30:00 GMT"  # 1_687_253_400


def test_the_same_size_and_second_hold_the_new_version() -> None:
    assert holds_version(INFO, 200, "200", SECOND)


def test_another_size_second_status_or_a_missing_header_does_not() -> None:
    assert not holds_version(INFO, 200, "100", SECOND)
    assert not holds_version(INFO, 200, "200", "Tue, 20 Jun 2023 09:30:01 GMT")
    assert not holds_version(INFO, 404, "200", SECOND)
    assert not holds_version(INFO, 200, None, SECOND)
    assert not holds_version(INFO, 200, "200", None)
    assert not holds_version(INFO, 200, "200", "yesterday")


def test_the_delay_doubles_up_to_its_bound() -> None:
    assert next_delay(1.0) == 2.0 and next_delay(MAX_DELAY) == MAX_DELAY
