"""HTTP index scan benchmark: one tree listed by rsync and by a real nginx's index pages.

Run from the repository root: ``.venv/bin/python bench/scan/index_pages.py --files 20000``.
Needs ``rsync`` and ``nginx`` (only its binary: it runs as a child on 127.0.0.1). The files are
sparse (no disk space). For each index format the first scan and a rescan are timed and the
listing compared with rsync's (JSON: equal; HTML: equal sizes, times to the minute).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet import task  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

from mirrorbits.config import HttpScan  # noqa: E402
from mirrorbits.scan.http import HttpScanner  # noqa: E402
from mirrorbits.scan.rsync import ScanListing, rsync_list  # noqa: E402
from tests.servers import free_port, wait_for_port  # noqa: E402

T0 = 1_795_571_647


def make_tree(root: Path, files: int, per_dir: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for number in range(files):
        directory = number // per_dir
        path = root / f"pool/d{directory // 20:03d}/s{directory:04d}/f{number:07d}.deb"
        if number % per_dir == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as stream:
            stream.truncate(rng.choice((0, 500, 5_000, 50_000, 5_000_000)) + rng.randrange(900))
        stamp = T0 + rng.randrange(10**6)
        os.utime(path, (stamp, stamp))


def start_nginx(work: Path, tree: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    (work / "temp").mkdir(parents=True)
    temp = " ".join(f"{kind}_temp_path {work / 'temp'};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(f"""{user}
pid {work / 'nginx.pid'}; error_log {work / 'error.log'}; daemon off; worker_processes 1;
events {{ worker_connections 256; }}
http {{ access_log {work / 'access.log'}; {temp}
  server {{ listen 127.0.0.1:{port};
    location /html/ {{ alias {tree}/; autoindex on; }}
    location /rounded/ {{ alias {tree}/; autoindex on; autoindex_exact_size off; }}
    location /json/ {{ alias {tree}/; autoindex on; autoindex_format json; }} }} }}
""")
    process = subprocess.Popen([binary, "-c", str(work / "nginx.conf"), "-e",
                                str(work / "error.log")])
    wait_for_port("127.0.0.1", port)
    return process


def start_rsyncd(work: Path, tree: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "rsyncd.conf"
    conf.write_text(f"use chroot = no\npid file = {work / 'rsyncd.pid'}\n"
                    f"[tree]\npath = {tree}\nread only = yes\n")
    process = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}",
                                f"--port={port}", "--address=127.0.0.1"])
    wait_for_port("127.0.0.1", port)
    return process


def requests(log: Path) -> tuple[int, int]:
    """(GET, HEAD) lines of nginx's access log so far."""
    lines = log.read_text().splitlines() if log.exists() else []
    return (sum('"GET ' in line for line in lines), sum('"HEAD ' in line for line in lines))


async def run(args: argparse.Namespace, reactor: Any, work: Path) -> None:
    tree = work / "tree"
    make_tree(tree, args.files, args.per_dir)
    nginx_port, rsync_port = free_port(), free_port()
    processes = [start_nginx(work / "nginx", tree, nginx_port),
                 start_rsyncd(work, tree, rsync_port)]
    try:
        started = time.monotonic()
        by_rsync = await rsync_list(reactor, f"rsync://127.0.0.1:{rsync_port}/tree/", 3600)
        took = time.monotonic() - started
        print(f"rsync            {len(by_rsync.files):7d} files  {took:6.2f} s")
        reference = {f.path: (f.size, f.mod_time_ns) for f in by_rsync.files}
        settings = HttpScan(concurrency=args.concurrency, delay=args.delay,
                            max_head_requests=args.files)
        log = work / "nginx" / "access.log"
        for location in ("json", "html", "rounded"):
            scanner = HttpScanner(reactor, lambda: settings)
            for attempt in ("first", "rescan"):
                before = requests(log)
                started = time.monotonic()
                listing: ScanListing = await scanner.list(
                    f"http://127.0.0.1:{nginx_port}/{location}/", 3600)
                took = time.monotonic() - started
                after = requests(log)
                got = {f.path: (f.size, f.mod_time_ns) for f in listing.files}
                if location == "json":
                    same = got == reference
                else:
                    same = {p: (s, t // 60_000_000_000) for p, (s, t) in got.items()} == {
                        p: (s, t // 60_000_000_000) for p, (s, t) in reference.items()}
                print(f"{location:8s} {attempt:7s} {len(got):7d} files  {took:6.2f} s  "
                      f"GET {after[0] - before[0]:6d}  HEAD {after[1] - before[1]:6d}  "
                      f"same as rsync: {same}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--per-dir", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()

    def go(reactor: Any) -> Deferred[None]:
        work = Path(tempfile.mkdtemp(prefix="mirrorbits-http-bench-"))
        done = Deferred.fromCoroutine(run(args, reactor, work))
        return done.addBoth(lambda result: (shutil.rmtree(work, ignore_errors=True), result)[1])

    task.react(go)


if __name__ == "__main__":
    main()
