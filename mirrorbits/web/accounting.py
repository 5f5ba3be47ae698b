"""What a served download leaves behind: a download-log line, and a count (spec §8.3.11).

Both in memory (the log is buffered, the counters flushed by :mod:`mirrorbits.stats`); a
``Range`` request may be de-duplicated through Redis, without delaying the answer.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from mirrorbits.logs import Logger
from mirrorbits.web.context import WebContext
from mirrorbits.web.decision import Download
from mirrorbits.web.downloadlog import format_download_line
from mirrorbits.web.head import RequestHead

log = Logger()


def record(ctx: WebContext, head: RequestHead, download: Download) -> None:
    """Log an answered download; count it when it is a GET redirect."""
    _log_download(ctx, head, download)
    if download.kind == "REDIRECT" and head.method == b"GET":
        _count(ctx, head, download)


def _log_download(ctx: WebContext, head: RequestHead, download: Download) -> None:
    download_log = ctx.download_log
    if download_log is None or not download_log.log_dir:
        return
    mirror = download.mirror
    line = format_download_line(
        ctx.clock.seconds(), download.kind, download.status,
        head.method.decode("ascii", "replace"), download.info.path, download.ip, mirror.name,
        download.fallback, mirror.asnum, download.client.as_num, download.distance,
        mirror.country_fields, None,
    )
    download_log.write_line(line)


def _count(ctx: WebContext, head: RequestHead, download: Download) -> None:
    info, mirror_id = download.info, download.mirror.id
    if not info.path:
        return
    stats = ctx.stats
    dedup = ctx.dedup
    if (dedup is None or head.getHeader(b"range") is None
            or ctx.config().same_download_interval <= 0):
        stats.count_download(mirror_id, info.path, info.size)
        return
    agent = (head.getHeader(b"user-agent") or b"").decode("latin-1")

    def counted(should: bool) -> None:
        if should:
            stats.count_download(mirror_id, info.path, info.size)

    d = Deferred.fromCoroutine(dedup.should_count(download.ip, agent, info.path, True))
    d.addCallback(counted)
    d.addErrback(lambda f: log.failure("range de-duplication failed", f))
