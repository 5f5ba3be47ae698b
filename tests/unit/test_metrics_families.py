"""The metrics' pure parts: what the request path counts, the families of a snapshot."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from mirrorbits.config import Config
from mirrorbits.configcheck import value_errors
from mirrorbits.metrics.counts import RequestCounts
from mirrorbits.metrics.families import Snapshot, exclusion_reason, families
from mirrorbits.metrics.observed import Observations
from mirrorbits.model import FileInfo, GeoRecord, Mirror
from mirrorbits.web.decision import (
    Download,
    ErrorText,
    Json,
    Moved,
    NotModified,
    Page,
    Redirect,
)


def redirect(mirror: Mirror, fallback: bool = False) -> Redirect:
    download = Download("REDIRECT", 302, FileInfo(path="/a"), "127.0.0.1", GeoRecord(),
                        mirror, 0.0, fallback)
    return Redirect(b"http://m/a", [], download)


def test_counts_each_outcome() -> None:
    counts = RequestCounts()
    madrid = Mirror(id=1, name="madrid")
    for decision in (redirect(madrid), redirect(madrid), redirect(Mirror(name="fb"), True),
                     Json(200, b"{}", None), Json(503, b"{}", None), NotModified(1),
                     ErrorText(404, "Not Found"), ErrorText(500, "x"), Moved(b"/a"),
                     Page(200, b"text/html", b"")):
        counts.count(decision)
    assert counts.outcomes == {"redirect": 2, "fallback": 1, "json": 1, "not_modified": 1,
                               "other": 2, "4xx": 1, "5xx": 2}
    assert counts.redirects == {"madrid": 2, "fb": 1}


def test_exclusion_reasons() -> None:
    assert exclusion_reason(Mirror(enabled=False, http_up=True)) == "disabled"
    assert exclusion_reason(Mirror(enabled=True, http_url="http://m/")) == "down"
    assert exclusion_reason(Mirror(enabled=True, http_url="http://m/", http_up=True)) is None
    assert exclusion_reason(Mirror(enabled=True, http_url="https://m/", http_up=True)) == "down"


def test_odd_mirror_names_survive_the_exposition() -> None:
    odd = 'a"b\\c\nd'
    observations = Observations()
    observations.checked(7, 0.25)
    observations.scanned(7, 3.5, 42)
    snapshot = Snapshot(outcomes={"redirect": 1}, redirects={odd: 1},
                        mirrors=[Mirror(id=7, name=odd, http_url="http://m/", enabled=True,
                                        http_up=True)],
                        observations=observations, redis_connected=False, caches={"files": 3})

    class Fixed(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            return families(snapshot)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    text = generate_latest(registry).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples["mirrorbits_redirects_total", (("mirror", odd),)] == 1
    assert samples["mirrorbits_mirror_check_latency_seconds", (("mirror", odd),)] == 0.25
    assert samples["mirrorbits_scan_duration_seconds", (("mirror", odd),)] == 3.5
    assert samples["mirrorbits_scan_files", (("mirror", odd),)] == 42
    assert samples["mirrorbits_redis_connected", ()] == 0
    assert samples["mirrorbits_cache_entries", (("cache", "files"),)] == 3


def test_the_mirror_times_are_timestamps_and_absent_when_never() -> None:
    synced = Mirror(id=1, name="synced", last_sync=1_790_000_100,
                    last_successful_sync=1_790_000_000, last_mod_time=1_789_999_000,
                    state_since=1_789_000_000)
    snapshot = Snapshot(outcomes={}, redirects={}, mirrors=[synced, Mirror(id=2, name="new")],
                        observations=Observations(), redis_connected=True, caches={})
    samples = {(s.name, s.labels["mirror"]): s.value
               for family in families(snapshot) for s in family.samples
               if s.name.endswith("_timestamp_seconds")}
    assert samples == {
        ("mirrorbits_mirror_last_successful_sync_timestamp_seconds", "synced"): 1_790_000_000,
        ("mirrorbits_mirror_last_sync_timestamp_seconds", "synced"): 1_790_000_100,
        ("mirrorbits_mirror_trace_timestamp_seconds", "synced"): 1_789_999_000,
        ("mirrorbits_mirror_state_since_timestamp_seconds", "synced"): 1_789_000_000}


def test_a_bad_address_is_one_line() -> None:
    errors = [error.text for error in value_errors(
        Config(repository="/srv", metrics_listen_address="127.0.0.1:http"))]
    assert [e for e in errors if e.startswith("MetricsListenAddress")] == [
        e for e in errors if "MetricsListenAddress" in e]
    assert len([e for e in errors if "MetricsListenAddress" in e]) == 1
