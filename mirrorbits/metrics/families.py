"""The metric families of one scrape, from a :class:`Snapshot` (pure).

Label values are the operators' mirror names; the exposition escapes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import frozen
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from mirrorbits.metrics.observed import Observations
from mirrorbits.model import Mirror


@frozen
class Snapshot:
    """What one scrape shows: this process' counts, the mirrors as Redis has them (None:
    Redis could not be read), the monitoring services' observations, the connection, caches."""

    outcomes: Mapping[str, int]
    redirects: Mapping[str, int]
    mirrors: Sequence[Mirror] | None
    observations: Observations
    redis_connected: bool
    caches: Mapping[str, int]


#: The mirror record's times (Unix seconds, as any node recorded them in Redis): field ->
#: (the family's name part, its help). An alert on a mirror whose sync is days old reads
#: ``time() - mirrorbits_mirror_last_successful_sync_timestamp_seconds``.
_MIRROR_TIMES = {
    "last_successful_sync": ("last_successful_sync",
                             "Time of the mirror's last successful scan"),
    "last_sync": ("last_sync", "When the mirror's last scan attempt started"),
    "last_mod_time": ("trace", "The time the mirror's trace file said at its last check"),
    "state_since": ("state_since", "Since when the mirror is in its current up/down state"),
}


def exclusion_reason(mirror: Mirror) -> str | None:
    """Why no request can be sent to ``mirror`` now, whatever the file and the client."""
    if not mirror.enabled:
        return "disabled"
    up = (mirror.supports_http and mirror.http_up) or (mirror.supports_https and mirror.https_up)
    return None if up else "down"


def families(snapshot: Snapshot) -> list[Metric]:
    """Every mirrorbits family of ``snapshot``."""
    requests = CounterMetricFamily(
        "mirrorbits_requests", "Answered requests by outcome", labels=["outcome"])
    for outcome, count in snapshot.outcomes.items():
        requests.add_metric([outcome], count)
    redirects = CounterMetricFamily(
        "mirrorbits_redirects", "Redirects by chosen mirror (fallbacks included)",
        labels=["mirror"])
    for name, count in sorted(snapshot.redirects.items()):
        redirects.add_metric([name], count)
    redis = GaugeMetricFamily("mirrorbits_redis_connected",
                              "1 when the Redis connection is ready")
    redis.add_metric([], 1 if snapshot.redis_connected else 0)
    caches = GaugeMetricFamily("mirrorbits_cache_entries", "Entries in the in-memory caches",
                               labels=["cache"])
    for name, size in snapshot.caches.items():
        caches.add_metric([name], size)
    return [requests, redirects, redis, caches, *_mirror_families(snapshot)]


def _mirror_families(snapshot: Snapshot) -> list[Metric]:
    up = GaugeMetricFamily("mirrorbits_mirror_up", "1 when the mirror's last check succeeded",
                           labels=["mirror", "protocol"])
    enabled = GaugeMetricFamily("mirrorbits_mirror_enabled", "1 when the mirror is enabled",
                                labels=["mirror"])
    excluded = GaugeMetricFamily(
        "mirrorbits_mirror_excluded", "1 when no request is sent to the mirror, by reason",
        labels=["mirror", "reason"])
    latency = GaugeMetricFamily(
        "mirrorbits_mirror_check_latency_seconds",
        "Duration of the mirror's last health check by this node", labels=["mirror"])
    duration = GaugeMetricFamily(
        "mirrorbits_scan_duration_seconds",
        "Duration of the mirror's last successful scan by this node", labels=["mirror"])
    files = GaugeMetricFamily("mirrorbits_scan_files",
                              "Files listed by the mirror's last successful scan by this node",
                              labels=["mirror"])
    times = {field: GaugeMetricFamily(
        f"mirrorbits_mirror_{metric}_timestamp_seconds", what, labels=["mirror"])
        for field, (metric, what) in _MIRROR_TIMES.items()}
    observed = snapshot.observations
    for mirror in sorted(snapshot.mirrors or (), key=lambda m: m.name):
        name = mirror.name
        for field, family in times.items():
            when = getattr(mirror, field)
            if when:  # never happened: absent, not 1970
                family.add_metric([name], when)
        if mirror.supports_http:
            up.add_metric([name, "http"], 1 if mirror.http_up else 0)
        if mirror.supports_https:
            up.add_metric([name, "https"], 1 if mirror.https_up else 0)
        enabled.add_metric([name], 1 if mirror.enabled else 0)
        reason = exclusion_reason(mirror)
        if reason is not None:
            excluded.add_metric([name, reason], 1)
        seconds = observed.check_seconds.get(mirror.id)
        if seconds is not None:
            latency.add_metric([name], seconds)
        scan = observed.scans.get(mirror.id)
        if scan is not None:
            duration.add_metric([name], scan.seconds)
            files.add_metric([name], scan.files)
    return [up, enabled, excluded, latency, duration, files, *times.values()]
