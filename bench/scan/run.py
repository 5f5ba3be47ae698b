"""Scan benchmark: parse and commit a large rsync listing for one mirror, watching Redis stalls.

Run from the repository root: ``.venv/bin/python bench/scan/run.py --files 1000000``.
See bench/README.md for what is measured and how to read the report.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from twisted.internet import task  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

from mirrorbits.model import PROTOCOL_RSYNC  # noqa: E402
from mirrorbits.scan.commit import ScanResult, commit_scan  # noqa: E402
from mirrorbits.scan.rsync import ScanListing, rsync_list  # noqa: E402
from mirrorbits.scan.rsync_listing import ListedFile, Skipped, parse_line  # noqa: E402
from mirrorbits.store import keys  # noqa: E402
from mirrorbits.store.redis import RedisService  # noqa: E402
from mirrorbits.store.scans import acquire_scan_lock  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

MIRROR_ID = 1
MIRROR_NAME = "bench"
URL = "rsync://bench.invalid/debian/"
STALL_WARNING_MS = 50.0
PROBE_MAX_SECONDS = 3600.0
_STEMS = ("pkg", "lib", "python3-", "golang-", "node-", "ruby-", "fonts-", "r-cran-")
_FLAVOURS = ("_amd64.deb", "_arm64.deb", "_i386.deb", ".dsc")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1_000_000, help="files in the listing")
    parser.add_argument("--parser", choices=("rsync", "parse_line"), default="rsync",
                        help="rsync: RsyncProtocol fed by a fake rsync that cats the listing; "
                             "parse_line: call parse_line on each line in this process")
    parser.add_argument("--known", type=float, default=0.5,
                        help="fraction of the listed paths already in FILES")
    parser.add_argument("--rescan-drop", type=int, default=100,
                        help="the rescan lists every file but one in this many (0: no rescan)")
    parser.add_argument("--probe-interval-ms", type=float, default=1.0)
    parser.add_argument("--redis-config", action="append", default=[], metavar="NAME=VALUE",
                        help="CONFIG SET on the private redis-server (repeatable), "
                             "e.g. lazyfree-lazy-server-del=yes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="keep the listing and fake rsync here")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--probe", metavar="HOST:PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- data set ------------------------------------------------------------------------------


def listing_lines(count: int, seed: int) -> Iterator[str]:
    """``rsync -r`` output for ``count`` files under ``pool/``, directories included."""
    rng = random.Random(seed)
    yield "drwxr-xr-x          4,096 2024/05/01 10:00:00 .\n"
    yield "drwxr-xr-x          4,096 2024/05/01 10:00:00 pool\n"
    yield "drwxr-xr-x          4,096 2024/05/01 10:00:00 pool/main\n"
    seen_dirs: set[str] = set()
    written = 0
    package = 0
    while written < count:
        stem = _STEMS[package % len(_STEMS)]
        name = f"{stem}{package}"
        letter = name[:4] if name.startswith("lib") else name[0]
        letter_dir = f"pool/main/{letter}"
        stamp = time.strftime("%Y/%m/%d %H:%M:%S",
                              time.gmtime(rng.randrange(1_420_070_400, 1_767_225_600)))
        if letter_dir not in seen_dirs:
            seen_dirs.add(letter_dir)
            yield f"drwxr-xr-x {4096:>14,} {stamp} {letter_dir}\n"
        yield f"drwxr-xr-x {4096:>14,} {stamp} {letter_dir}/{name}\n"
        version = f"{rng.randrange(1, 30)}.{rng.randrange(0, 20)}-{rng.randrange(1, 9)}"
        for flavour in _FLAVOURS:
            if written == count:
                break
            size = max(200, int(rng.lognormvariate(11.5, 2.0)))
            yield f"-rw-r--r-- {size:>14,} {stamp} {letter_dir}/{name}/{name}_{version}{flavour}\n"
            written += 1
        package += 1


def write_listing(path: Path, count: int, seed: int) -> int:
    """Write the listing; its size in bytes."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for line in listing_lines(count, seed):
            out.write(line)
    return path.stat().st_size


def write_fake_rsync(path: Path, listing: Path) -> None:
    """An executable that ignores its arguments and prints ``listing`` (like ``rsync -r``)."""
    cat = shutil.which("cat") or "/bin/cat"
    path.write_text(f"#!/bin/sh\nexec {shlex.quote(cat)} {shlex.quote(str(listing))}\n")
    path.chmod(0o755)


def parse_directly(listing: Path) -> ScanListing:
    """Every line through ``parse_line``, without a child process."""
    files: list[ListedFile] = []
    skipped = 0
    with listing.open("rb") as source:
        for raw in source:
            parsed = parse_line(raw.rstrip(b"\n"))
            if isinstance(parsed, Skipped):
                skipped += not parsed.expected
            else:
                files.append(parsed)
    return ScanListing(files=tuple(files), skipped_lines=skipped)


def prefill_files(db: redis.Redis, paths: list[str], fraction: float) -> int:
    """Put every n-th listed path into ``FILES`` (the local repository's files)."""
    step = max(1, round(1 / fraction)) if fraction > 0 else 0
    chosen = paths[::step] if step else []
    for start in range(0, len(chosen), 10_000):
        db.sadd(keys.FILES, *chosen[start:start + 10_000])
    return len(chosen)


# -- memory --------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# -- the PING probe (a separate process, so the GIL of this one does not delay it) ----------


def run_probe(address: str, interval_ms: float) -> int:
    """PING every ``interval_ms`` until SIGTERM; print the round trips as JSON."""
    host, port = address.rsplit(":", 1)
    db = redis.Redis(host=host, port=int(port), socket_timeout=30)
    stop = False

    def on_term(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    db.ping()
    print("ready", flush=True)
    interval = interval_ms / 1000
    round_trips: list[float] = []
    worst: list[tuple[float, float]] = []  # (ms, monotonic start)
    deadline = time.monotonic() + PROBE_MAX_SECONDS
    tick = time.monotonic()
    while not stop and tick < deadline:
        started = time.monotonic()
        db.ping()
        elapsed_ms = (time.monotonic() - started) * 1000
        round_trips.append(elapsed_ms)
        if len(worst) < 10 or elapsed_ms > worst[-1][0]:
            worst = sorted([*worst, (elapsed_ms, started)], reverse=True)[:10]
        tick = max(tick + interval, time.monotonic())
        time.sleep(max(0.0, tick - time.monotonic()))
    round_trips.sort()
    count = len(round_trips)

    def pct(p: float) -> float:
        return round_trips[min(count - 1, int(p * count))] if count else 0.0

    print(json.dumps({
        "pings": count, "max_ms": round_trips[-1] if count else 0.0,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
        "over_10ms": sum(1 for r in round_trips if r > 10),
        "over_50ms": sum(1 for r in round_trips if r > 50),
        "worst": worst,
    }), flush=True)
    return 0


class Probe:
    """The probe process around one measured step."""

    def __init__(self, address: str, interval_ms: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--probe", address,
             "--probe-interval-ms", str(interval_ms)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the PING probe did not start")

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        result: dict[str, Any] = json.loads(out)
        return result


# -- Redis latency reports -----------------------------------------------------------------


def reset_latency(db: redis.Redis) -> None:
    _command(db, "LATENCY", "RESET")
    _command(db, "SLOWLOG", "RESET")


def latency_report(db: redis.Redis) -> dict[str, Any]:
    """``LATENCY LATEST``, ``LATENCY HISTORY command`` and the slow log since the reset."""
    latest = [
        {"event": _text(e[0]), "latest_ms": int(e[2]), "max_ms": int(e[3])}
        for e in _command(db, "LATENCY", "LATEST")
    ]
    history = [int(ms) for _, ms in _command(db, "LATENCY", "HISTORY", "command")]
    slow: list[dict[str, Any]] = []
    for entry in _command(db, "SLOWLOG", "GET", "1024"):
        args = [_text(a) for a in entry[3]]
        shown = " ".join(a if len(a) <= 40 else a[:37] + "..." for a in args[:4])
        if len(args) > 4:
            shown += f" ... ({len(args)} arguments)"
        slow.append({"ms": int(entry[2]) / 1000, "command": shown})
    slow.sort(key=lambda s: -float(s["ms"]))
    return {"latest": latest, "command_history_ms": history, "slowlog": slow[:10]}


def _command(db: redis.Redis, *args: Any) -> Any:
    return db.execute_command(*args)  # type: ignore[no-untyped-call]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- the run -------------------------------------------------------------------------------


async def measure(reactor: Any, args: argparse.Namespace, server: RedisServer,
                  listing_path: Path, fake_rsync: Path) -> dict[str, Any]:
    db = redis.Redis(host=server.host, port=server.port)
    db.config_set("latency-monitor-threshold", 1)
    db.config_set("slowlog-log-slower-than", 1000)
    db.config_set("slowlog-max-len", 1024)
    for setting in args.redis_config:
        name, _, value = setting.partition("=")
        db.config_set(name, value)
    results: dict[str, Any] = {"rss_before_parse_mib": current_rss_mib()}

    started = time.perf_counter()
    if args.parser == "rsync":
        listing = await rsync_list(reactor, URL, 3600.0, name=MIRROR_NAME,
                                   executable=str(fake_rsync))
    else:
        listing = parse_directly(listing_path)
    results["parse_s"] = time.perf_counter() - started
    results["listed"] = len(listing.files)
    results["skipped_lines"] = listing.skipped_lines
    results["rss_after_parse_mib"] = current_rss_mib()
    results["peak_rss_after_parse_mib"] = peak_rss_mib()

    paths = [f.path for f in listing.files]
    results["in_files"] = prefill_files(db, paths, args.known)
    del paths

    service = RedisService(server.address, "", 0, (), "", reactor)
    service.startService()
    try:
        await service.whenReady()
        client = service.client()
        results["scan"] = await one_commit(db, client, reactor, server, listing, args)
        if args.rescan_drop > 0:
            kept = tuple(f for i, f in enumerate(listing.files) if i % args.rescan_drop)
            rescan = ScanListing(files=kept)
            results["rescan"] = await one_commit(db, client, reactor, server, rescan, args)
    finally:
        await service.stopService()
    results["peak_rss_mib"] = peak_rss_mib()
    info = db.info("memory")
    results["redis_used_memory_peak"] = info.get("used_memory_peak_human")
    db.close()
    return results


async def one_commit(db: redis.Redis, client: Any, reactor: Any, server: RedisServer,
                     listing: ScanListing, args: argparse.Namespace) -> dict[str, Any]:
    reset_latency(db)
    probe = Probe(server.address, args.probe_interval_ms)
    try:
        lock = await acquire_scan_lock(client, MIRROR_ID, reactor)
        began = time.monotonic()
        started = time.perf_counter()
        try:
            result: ScanResult = await commit_scan(
                client, MIRROR_ID, MIRROR_NAME, listing, PROTOCOL_RSYNC, reactor)
        finally:
            await lock.release()
        elapsed = time.perf_counter() - started
    finally:
        probed = probe.stop()
    probed["worst"] = [(ms, at - began) for ms, at in probed["worst"]]
    return {
        "commit_s": elapsed, "files": result.files, "known": result.known,
        "removed": result.removed, "files_per_s": result.files / elapsed if elapsed else 0.0,
        "probe": probed, "redis": latency_report(db),
    }


# -- report --------------------------------------------------------------------------------


def print_commit(title: str, r: dict[str, Any]) -> float:
    """Print one commit's figures; its worst stall in ms."""
    probe, red = r["probe"], r["redis"]
    worst_cmd = max(red["command_history_ms"], default=0)
    worst_event = max((e["max_ms"] for e in red["latest"]), default=0)
    print(f"{title}:")
    print(f"  commit              {r['commit_s']:.2f} s   {r['files_per_s']:,.0f} files/s   "
          f"({r['files']:,} files, {r['known']:,} known, {r['removed']:,} removed)")
    print(f"  PING probe          {probe['pings']:,} pings, max {probe['max_ms']:.1f} ms, "
          f"p50 {probe['p50_ms']:.2f} ms, p99 {probe['p99_ms']:.2f} ms, "
          f"p99.9 {probe['p999_ms']:.2f} ms, >10 ms: {probe['over_10ms']}, "
          f">50 ms: {probe['over_50ms']}")
    worst = ", ".join(f"{ms:.1f} ms at +{at:.2f} s" for ms, at in probe["worst"][:5])
    print(f"  worst round trips   {worst}")
    latest = ", ".join(f"{e['event']} {e['max_ms']} ms" for e in red["latest"]) or "none"
    print(f"  LATENCY LATEST      {latest}")
    print(f"  LATENCY HISTORY command (ms) {red['command_history_ms'][-20:]}")
    print("  SLOWLOG (slowest first)")
    for entry in red["slowlog"][:8]:
        print(f"    {entry['ms']:9.1f} ms  {entry['command']}")
    return float(max(probe["max_ms"], worst_cmd, worst_event))


def report(args: argparse.Namespace, r: dict[str, Any], listing_bytes: int,
           generate_s: float, command: str) -> None:
    parser = ("RsyncProtocol (fake rsync cats the listing; rsync_list with executable=)"
              if args.parser == "rsync" else "parse_line on each line, in-process")
    print()
    print(f"command             {command}")
    print(f"listing             {r['listed']:,} files, {listing_bytes / 2**20:.1f} MiB "
          f"(generated in {generate_s:.1f} s), {r['skipped_lines']} unexpected lines")
    print(f"parser              {parser}")
    if args.redis_config:
        print(f"redis CONFIG SET    {', '.join(args.redis_config)}")
    print(f"parse               {r['parse_s']:.2f} s   {r['listed'] / r['parse_s']:,.0f} files/s")
    print(f"FILES pre-filled    {r['in_files']:,} of the listed paths")
    stalls = [print_commit("first scan (empty mirror)", r["scan"])]
    if "rescan" in r:
        stalls.append(print_commit(
            f"rescan (same mirror, 1 file in {args.rescan_drop} gone)", r["rescan"]))
    total = r["parse_s"] + r["scan"]["commit_s"]
    print(f"parse + commit      {total:.2f} s   {r['listed'] / total:,.0f} files/s (first scan)")
    print(f"RSS                 {r['rss_before_parse_mib']:.0f} MiB before parsing, "
          f"{r['rss_after_parse_mib']:.0f} MiB after, peak {r['peak_rss_mib']:.0f} MiB "
          f"(ru_maxrss); redis-server peak {r['redis_used_memory_peak']}")
    worst = max(stalls)
    verdict = "ABOVE" if worst > STALL_WARNING_MS else "below"
    print(f"WORST STALL         {worst:.1f} ms ({verdict} {STALL_WARNING_MS:.0f} ms)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.probe:
        return run_probe(args.probe, args.probe_interval_ms)
    command = shlex.join([".venv/bin/python", "bench/scan/run.py", *argv])
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="bench-scan-"))
    workdir.mkdir(parents=True, exist_ok=True)
    listing_path = workdir / "listing.txt"
    fake_rsync = workdir / "fake-rsync"
    started = time.perf_counter()
    listing_bytes = write_listing(listing_path, args.files, args.seed)
    generate_s = time.perf_counter() - started
    write_fake_rsync(fake_rsync, listing_path)
    server = RedisServer(workdir=workdir / "redis")
    server.start()
    outcome: dict[str, Any] = {}
    try:
        def run(reactor: Any) -> Any:
            async def body() -> None:
                outcome.update(await measure(reactor, args, server, listing_path, fake_rsync))
            return Deferred.fromCoroutine(body())

        try:
            task.react(run)
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                raise
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(args, outcome, listing_bytes, generate_s, command)
    if args.json:
        Path(args.json).write_text(json.dumps(outcome, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
