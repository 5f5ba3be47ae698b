"""When a mirror whose monitor scan failed is tried again (spec §20 item 24)."""

from __future__ import annotations

from typing import Any

from mirrorbits.model import Mirror
from mirrorbits.scan.retry import ScanRetries, describe_delay, retry_delay

NOW = 1_800_000_000.0
INTERVAL = 30 * 60.0


def mirror(mid: int, **values: Any) -> Mirror:
    return Mirror(id=mid, name=f"m{mid}", enabled=values.pop("enabled", True), **values)


def test_the_delay_doubles_from_one_minute_up_to_the_scan_interval() -> None:
    assert [retry_delay(n, INTERVAL) / 60 for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert retry_delay(10_000, INTERVAL) == INTERVAL  # no overflow after days of failures
    assert retry_delay(1, 0.0) == 0.0  # ScanInterval: 0 rescans at every tick anyway


def test_describe_delay() -> None:
    assert describe_delay(60) == "1 min"
    assert describe_delay(1800) == "30 min"
    assert describe_delay(0) == "0 s"


def test_failures_in_a_row_back_off_and_a_success_resets() -> None:
    retries = ScanRetries()
    assert retries.retry_at(1) is None
    assert retries.failed(1, NOW, INTERVAL).retry_at == NOW + 60
    later = NOW + 70
    second = retries.failed(1, later, INTERVAL)
    assert (second.count, second.retry_at) == (2, later + 120)
    assert retries.retry_at(1) == later + 120
    assert retries.retry_at(2) is None
    retries.succeeded(1)
    assert retries.retry_at(1) is None
    assert retries.failed(1, later + 200, INTERVAL).count == 1


def test_gone_disabled_elsewhere_scanned_or_not_handled_mirrors_are_forgotten() -> None:
    retries = ScanRetries()
    for mid in range(1, 6):
        retries.failed(mid, NOW, INTERVAL)
    mirrors = [
        mirror(1, last_successful_sync=int(NOW) - 3600),  # an older success: kept
        mirror(2, enabled=False),
        mirror(3, last_successful_sync=int(NOW) + 10),  # another node's scan succeeded
        mirror(4),  # handled by another node now
    ]  # 5 was removed
    retries.keep(mirrors, lambda mid: mid != 4, (), INTERVAL)
    assert [mid for mid in range(1, 6) if retries.retry_at(mid) is not None] == [1]
    # tried again since, elsewhere, without a success yet: counted from that attempt
    retries.keep([mirror(1, last_sync=int(NOW) + 5)], lambda mid: True, (), INTERVAL)
    assert retries.retry_at(1) == NOW + 5 + 60


def test_a_mirror_whose_last_attempt_failed_is_taken_up_from_its_record() -> None:
    # walked: a second node joined the cluster and took over a mirror whose scan had just
    # failed on the first: its failure was forgotten, the next scan a ScanInterval later
    failing = {"last_sync": int(NOW) - 30, "last_successful_sync": int(NOW) - 7200}
    mirrors = [mirror(1, **failing), mirror(2, last_sync=int(NOW) - 30),  # never succeeded
               mirror(3, last_sync=int(NOW) - 30, last_successful_sync=int(NOW) - 30),
               mirror(4, **failing), mirror(5, enabled=False, **failing), mirror(6, **failing)]
    retries = ScanRetries()
    retries.keep(mirrors, lambda mid: mid != 6, {4}, INTERVAL)  # 4: scanning it now
    assert {mid: retries.retry_at(mid) for mid in range(1, 7)} == {
        1: NOW + 30, 2: NOW + 30, 3: None, 4: None, 5: None, 6: None}
    retries.postpone(1, NOW + 200)  # another node was scanning it
    retries.keep(mirrors, lambda mid: mid != 6, {4}, INTERVAL)
    assert retries.retry_at(1) == NOW + 200
    assert retries.failed(1, NOW + 210, INTERVAL).count == 2
