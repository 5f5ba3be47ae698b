"""The CPU an invalidation storm costs one cache, in-process and counted until it is done.

A ``MirrorCache`` fed by a ``PubSubService`` (as in a worker, no HTTP) is filled with the
``bench/scale`` data set (every file held); a separate process publishes the bench's storm
(half file updates, half file-on-mirror updates, 10,000 a second). Printed: the process'
CPU per message until every message was handed on and every re-read landed, and how long
after the writer that was. Run from the repository root::

    .venv/bin/python bench/scale/storm_cpu.py --files 20000 --storm 100000 [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet import reactor, task  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402

from bench.scale.run import parse_args as bench_args  # noqa: E402
from bench.scale.run import write_data  # noqa: E402
from mirrorbits.cache import REFRESH_INTERVAL, MirrorCache  # noqa: E402
from mirrorbits.store import keys  # noqa: E402
from mirrorbits.store.pubsub import PubSubService  # noqa: E402
from mirrorbits.store.redis import RedisService  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

WRITER = """
import sys
import redis
sys.path.insert(0, sys.argv[5])
from bench.scale.run import storm
client = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), decode_responses=True)
paths = [f"/pool/{n // 1000:04d}/file-{n}.bin" for n in range(int(sys.argv[3]))]
storm(client, paths, int(sys.argv[4]), 10000.0, 100)
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(server: RedisServer, args: argparse.Namespace) -> None:
    service = RedisService(server.address, "", 0, (), "", reactor)
    service.startService()
    await service.whenReady()
    pubsub = PubSubService(server.address, "", reactor)
    cache = MirrorCache(service.reading_client, reactor, refresh_interval=REFRESH_INTERVAL)
    cache.resize(200_000)
    pubsub.on_message(keys.CHANNEL_FILE_UPDATE, cache.on_file_update)
    pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE, cache.on_mirror_update)
    pubsub.on_message(keys.CHANNEL_MIRROR_FILE_UPDATE, cache.on_mirror_file_update)
    seen = [0]
    pubsub.on_message(keys.CHANNEL_FILE_UPDATE, lambda _: seen.__setitem__(0, seen[0] + 1))
    pubsub.startService()
    await pubsub.whenReady()
    held = await Deferred.fromCoroutine(cache.warm())
    profile = cProfile.Profile() if args.profile else None
    cpu_at, started = cpu(), time.monotonic()
    if profile is not None:
        profile.enable()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, server.host, str(server.port),
                               str(args.files), str(args.storm), str(ROOT)])
    while writer.poll() is None:
        await task.deferLater(reactor, 0.05, lambda: None)
    sent_s, cpu_sent = time.monotonic() - started, cpu() - cpu_at
    last = -1
    while seen[0] != last or cache._stale or cache._refreshing:
        last = seen[0]
        await task.deferLater(reactor, 0.3, lambda: None)
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
    used, done_s = cpu() - cpu_at, time.monotonic() - started - sent_s
    print(f"{held} files held; {args.storm} messages sent in {sent_s:.1f} s (load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})\n"
          f"cache CPU {used:.2f} s = {used / args.storm * 1e6:.1f} us per message "
          f"({cpu_sent:.2f} s while sent; done {done_s:.1f} s after the writer)", flush=True)
    await pubsub.stopService()
    await service.stopService()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--storm", type=int, default=100_000)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the storm into FILE")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mb-storm-cpu-"))
    server = RedisServer(workdir=workdir / "redis")
    server.start()
    try:
        write_data(bench_args(["--files", str(args.files), "--mirrors", "100",
                               "--requests", "1000"]), workdir, server)
        done = ensureDeferred(measure(server, args))
        done.addErrback(lambda failure: failure.printTraceback())
        done.addBoth(lambda _: reactor.stop())
        reactor.run()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
