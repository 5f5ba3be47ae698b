"""CPU cost of one redirect, in process: no sockets, no Redis, no load generator.

The daemon's :class:`RedirectResource` and the bare 302 resource each answer the same raw
HTTP/1.1 requests through a real ``HTTPChannel`` on an in-memory transport. The cache is
filled with the records Redis would return (built by the same conversions), so only the warm
request path is timed. Statistics are counted in memory and never flushed (the flush to Redis
is outside this measurement; ``run.py`` measures it).

Usage: ``.venv/bin/python bench/redirect/inprocess.py [--requests N] [--profile [FILE]]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.web.server import Site  # noqa: E402

from bench.redirect import dataset  # noqa: E402
from bench.redirect.bare import BareRedirect, QuietSite  # noqa: E402
from mirrorbits.cache import MirrorCache  # noqa: E402
from mirrorbits.config import Config, with_repository  # noqa: E402
from mirrorbits.geo import GeoIP  # noqa: E402
from mirrorbits.stats import StatsService  # noqa: E402
from mirrorbits.store.records import file_info_from_hash, mirror_from_hash  # noqa: E402
from mirrorbits.web.resource import RedirectResource, WebContext  # noqa: E402
from mirrorbits.web.site import RedirectorSite  # noqa: E402


def _no_redis() -> Any:
    raise RuntimeError("the in-process benchmark has no Redis: the cache must be warm")


def warm_cache(cache: MirrorCache, plan: dataset.Plan) -> None:
    """Put what Redis holds for every path into the cache, as the read-through path would."""
    for bench in plan.mirrors:
        cache.mirrors.put(bench.mirror.id, mirror_from_hash(dataset.mirror_hash(bench.mirror)))
    for entry in plan.files:
        cache.files.put(entry.path, (file_info_from_hash(entry.path, dataset.file_hash(entry)),
                                     0.0))
        cache.file_mirrors.put(entry.path, entry.holders)
        for mirror_id in entry.holders:
            info = file_info_from_hash(entry.path, dataset.file_info_hash(entry, mirror_id))
            cache.mirror_files.put((mirror_id, entry.path), info)


def daemon_site(workdir: Path, plan: dataset.Plan, clock: Clock) -> Site:
    dataset.write_repository(workdir / "repository", plan.files)
    dataset.write_geoip(workdir / "geoip", plan.networks)
    config = with_repository(
        attrs.evolve(Config(), geoip_database_path=str(workdir / "geoip") + "/"),
        str(workdir / "repository"),
    )
    geo = GeoIP(config.geoip_database_path, clock)
    geo.load()
    cache = MirrorCache(_no_redis, clock)
    warm_cache(cache, plan)
    context = WebContext(
        config=lambda: config, cache=cache, geo=geo, stats=StatsService(_no_redis, clock),
        dedup=None, download_log=None, clock=clock, server_header=b"Mirrorbits/bench",
        get_client=_no_redis,
    )
    return RedirectorSite(RedirectResource(context), reactor=clock)


def requests_for(plan: dataset.Plan, count: int, start: int = 0,
                 new_pairs: bool = False) -> list[bytes]:
    """Requests ``start`` to ``start + count``: every path in turn, each from a client
    address; with ``new_pairs`` a path's client changes on each pass over the paths (so a
    file is rarely asked twice from the same place), else it stays the same (as wrk's)."""
    paths = [f.path for f in plan.files]
    ips = plan.client_ips
    return [
        b"GET " + paths[i % len(paths)].encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"X-Forwarded-For: "
        + ips[(i * 7 + (i // len(paths)) * 131 * new_pairs) % len(ips)].encode()
        + b"\r\nUser-Agent: mirrorbits-bench\r\n\r\n"
        for i in range(start, start + count)
    ]


def drive(site: Site, raw: list[bytes], clock: Clock) -> tuple[float, int]:
    """Feed every request to one keep-alive channel; (CPU seconds, 302 answers).

    CPU time of this process, not wall time: a busy machine slows the run but barely changes
    the figure, so two trees can be compared on a shared machine."""
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(transport)
    redirects = 0
    started = time.process_time()
    for request in raw:
        channel.dataReceived(request)
        if transport.io.getvalue().startswith(b"HTTP/1.1 302 "):
            redirects += 1
        transport.clear()
    elapsed = time.process_time() - started
    channel.connectionLost(None)
    clock.advance(3600)
    return elapsed, redirects


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--new-pairs", action="store_true",
                        help="a path's client address changes on every pass over the paths "
                             "(measured requests never repeat a warm-up's file and client)")
    parser.add_argument("--stale-memos", action="store_true",
                        help="make every file's memo stale before the measured requests (as "
                             "a cache's counters restarting did): what rebuilding them costs")
    parser.add_argument("--profile", nargs="?", const="-", metavar="FILE",
                        help="cProfile the daemon's requests (top 30 to stdout, or pstats FILE)")
    args = parser.parse_args(argv)
    plan = dataset.plan(args.seed, 60, 10_000, 3_000, 5_000)
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="mb-inproc-") as tmp:
        site = daemon_site(Path(tmp), plan, clock)
        bare_site = QuietSite(BareRedirect(), reactor=clock)
        warm_up = requests_for(plan, len(plan.files))
        raw = requests_for(plan, args.requests, len(plan.files) * 2 * args.new_pairs,
                           args.new_pairs)
        # Warm-up: every path twice (the first fills the cache, the second the redirect memo).
        drive(site, warm_up * 2, clock)
        drive(bare_site, raw[:2_000], clock)
        bare_s, bare_ok = drive(bare_site, raw, clock)
        if args.stale_memos:
            site.resource.ctx.cache.generation += 1
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        daemon_s, daemon_ok = drive(site, raw, clock)
        if args.profile:
            profiler.disable()
    n = len(raw)
    print(f"bare twisted.web 302: {bare_s / n * 1e6:7.1f} us/request ({n / bare_s:8.0f}/s), "
          f"{bare_ok} x 302")
    print(f"mirrorbits redirect:  {daemon_s / n * 1e6:7.1f} us/request ({n / daemon_s:8.0f}/s), "
          f"{daemon_ok} x 302")
    print(f"in-process ratio:     {bare_s / daemon_s:.3f}  (profiling inflates the daemon's "
          "time)" if args.profile else f"in-process ratio:     {bare_s / daemon_s:.3f}")
    if args.profile:
        if args.profile == "-":
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        else:
            profiler.dump_stats(args.profile)
    return 0 if daemon_ok == n and bare_ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
