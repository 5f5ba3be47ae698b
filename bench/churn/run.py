"""Churn: the share of right bytes while the origin publishes and the mirrors lag, lose files
and fail.

Run from the repository root: ``.venv/bin/python bench/churn/run.py`` (about four minutes).

One daemon (monitoring on, ``WatchLocalFiles: true``, one-minute scans and checks), a private
``redis-server``, six HTTP mirrors on 127.0.0.2 to 127.0.0.7 (a ``ThreadingHTTPServer`` each,
stopped and started again to simulate a failure), an ``rsync --daemon`` serving the same
copies for the scans, and the origin itself served over HTTP on 127.0.0.8 as the only
``Fallbacks`` entry. The origin holds ``--files`` files.

Timeline (seconds configurable):

* **before**: steady; every mirror holds every file.
* **churn**: every ``--publish-every`` seconds the origin publishes a new version of
  ``--publish-count`` files (written aside, then renamed into place: the watch sees
  ``IN_MOVED_TO``); each mirror copies each new version after a random lag of up to
  ``--max-lag`` seconds (temporary name, then rename, the modification time kept as
  ``rsync -t`` does); mirror 5 deletes ``--deleted`` files at the start of the phase; mirror 6
  is stopped (connection refused) for ``--down-seconds`` in the middle of the phase.
* **settled**: nothing changes any more; the copies still lagging land during it.

The client load: ``--rate`` requests per second (bounded: the timeline's length times the
rate), each a ``GET`` from a random client address (``X-Forwarded-For``, the daemon trusting
127.0.0.1), following the 302 to the mirror and reading the bytes.

**The rule.** An answer is right when the bytes read are those of a version the origin held
at some moment while the redirect was asked for: from the sending of the request to the
arrival of the 302 (the versions are read then). A request that a publication overtook (sent
before it, answered after it) may thus get either version; when it gets the older one it is
counted right and reported as ``raced``. A version published after the 302 arrived does not
make the answer wrong; a version published before the request was sent, even a few
milliseconds before, does (the daemon had not yet seen it: that is the watch's latency, and it
is counted).

Causes of wrong answers: ``stale`` (the mirror answered 200 with other bytes), ``mirror_404``,
``mirror_down`` (connection refused or failed), ``mirror_other`` (another status),
``redirector_5xx``, ``redirector_other`` (no 302 and no 5xx: a 404 for a file that exists).
Redirects to the fallback are counted apart (``fallback``): their bytes are checked too, and
they count as right bytes when right, but the target is that at most 5 % of the requests go
there.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import heapq
import http.client
import http.server
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402

from bench.harness import work_directory, write_json  # noqa: E402
from tests.daemon import BIN, render_config  # noqa: E402
from tests.servers import (  # noqa: E402
    RedisServer,
    env_without_proxies,
    free_port,
    rsync_daemon,
    wait_for_port,
)

MIRROR_HOSTS = tuple(f"127.0.0.{n}" for n in range(2, 8))
FALLBACK_HOST = "127.0.0.8"
START_MTIME = 1_700_000_000
POLL = 0.05  # seconds: how soon a mirror's serving thread sees it was stopped
PHASES = ("before", "churn", "settled")
CAUSES = ("stale", "mirror_404", "mirror_down", "mirror_other", "redirector_5xx",
          "redirector_other")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--before", type=float, default=30.0, help="seconds of the first phase")
    parser.add_argument("--churn", type=float, default=120.0, help="seconds of the churn")
    parser.add_argument("--settled", type=float, default=60.0, help="seconds after the churn")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--publish-every", type=float, default=4.0)
    parser.add_argument("--publish-count", type=int, default=3)
    parser.add_argument("--max-lag", type=float, default=30.0,
                        help="a mirror copies a new version after up to this many seconds")
    parser.add_argument("--deleted", type=int, default=15,
                        help="files mirror 5 deletes at the start of the churn")
    parser.add_argument("--down-seconds", type=float, default=30.0,
                        help="how long mirror 6 is down in the middle of the churn")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1,
                        help="the daemon's Workers setting (HTTP worker processes)")
    parser.add_argument("--verify-interval", type=int, default=2,
                        help="the daemon's VerifyInterval (seconds; 0: no file verification)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[churn {time.strftime('%H:%M:%S')}] {message}", flush=True)


def content_of(path: str, version: int) -> bytes:
    """The bytes of ``path`` at ``version`` (its size changes with the version, as a new
    release's usually does)."""
    line = f"{path} version {version}\n".encode()
    return line * (8 + version % 5) + b"." * version


def install(target: Path, content: bytes, mtime: float) -> None:
    """Write ``content`` aside and rename it into place (what publishers and rsync do)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(content)
    os.utime(temporary, (mtime, mtime))
    temporary.rename(target)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Logs nothing; notes when each ``HEAD`` (the daemon's checks) arrived in ``heads``."""

    def __init__(self, *args: Any, heads: list[float], **kwargs: Any) -> None:
        self.heads = heads  # before the request is handled, in the base class' __init__
        super().__init__(*args, **kwargs)

    def do_HEAD(self) -> None:
        self.heads.append(time.monotonic())
        super().do_HEAD()

    def log_message(self, format: str, *args: object) -> None:
        pass


_Request = socket.socket | tuple[bytes, socket.socket]


class _Server(http.server.ThreadingHTTPServer):
    """Remembers its open connections, so that stopping it closes them as a stopped server
    process does (its kernel closes every socket it held)."""

    daemon_threads = True
    allow_reuse_address = True

    def server_activate(self) -> None:
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self.connections_lock:
                self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self.connections_lock:
                self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections, self.open_connections = self.open_connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@attrs.define
class HTTPTree:
    """A directory served over HTTP on a fixed address, stopped and started at will."""

    root: Path
    host: str
    port: int = 0
    server: _Server | None = None
    heads: list[float] = attrs.field(factory=list)  # when each HEAD arrived (monotonic)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        handler = functools.partial(_Quiet, directory=str(self.root), heads=self.heads)
        self.server = _Server((self.host, self.port), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(POLL,), daemon=True).start()

    def stop(self) -> None:
        """Stop as a server process does, all at once: refuse new connections, close the
        open ones (then let its thread end)."""
        if self.server is not None:
            with contextlib.suppress(OSError):  # stops listening now, even while polled
                self.server.socket.shutdown(socket.SHUT_RDWR)
            self.server.close_connections()
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@attrs.define
class Origin:
    """The repository and the version of each file it holds now."""

    root: Path
    paths: list[str]
    versions: dict[str, int] = attrs.field(factory=dict)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    published: int = 0

    def create(self) -> None:
        for path in self.paths:
            install(self.root / path.lstrip("/"), content_of(path, 0), START_MTIME)
            self.versions[path] = 0

    def publish(self, path: str) -> None:
        with self.lock:
            version = self.versions[path] + 1
            install(self.root / path.lstrip("/"), content_of(path, version), time.time())
            self.versions[path] = version
            self.published += 1

    def version(self, path: str) -> int:
        with self.lock:
            return self.versions[path]


def copy_to(origin: Origin, tree: Path, path: str) -> None:
    """A mirror syncs ``path``: the origin's current copy, modification time kept."""
    source = origin.root / path.lstrip("/")
    with origin.lock:
        content = source.read_bytes()
        mtime = source.stat().st_mtime
    install(tree / path.lstrip("/"), content, mtime)


@attrs.define
class Timeline:
    """Timed actions, run in order by one thread."""

    events: list[tuple[float, int, str, Callable[[], None]]] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    done: list[tuple[float, str]] = attrs.field(factory=list)  # (seconds in, what)

    def at(self, when: float, what: str, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, len(self.events), what, action))

    def run(self, started: float, stop: threading.Event) -> None:
        while self.events and not stop.is_set():
            when, _, what, action = self.events[0]
            delay = started + when - time.monotonic()
            if delay > 0:
                stop.wait(min(delay, 0.5))
                continue
            heapq.heappop(self.events)
            self.done.append((round(time.monotonic() - started, 3), what))
            try:
                action()
            except OSError as error:
                self.errors.append(f"{what}: {error}")


@attrs.define
class Outcome:
    phase: str
    verdict: str  # "right", "raced", "fallback_right", "fallback_wrong", or a cause
    at: float = 0.0  # seconds into the timeline, when the request was sent
    path: str = ""
    host: str = ""  # where it was sent


def fetch(url: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=10)
    try:
        connection.request("GET", parts.path or "/", headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, response.getheader("Location") or "", body
    finally:
        connection.close()


def follow(daemon_url: str, origin: Origin, path: str, rng: random.Random) -> tuple[str, str]:
    """The verdict of one download, and the host it was sent to ("" without a redirect).

    Right: the bytes of a version the origin held at some moment while the redirect was
    asked for, from the request's sending to the 302's arrival (``raced`` when that is the
    older one of a publication made meanwhile); for the fallback, which serves the origin
    live, until its bytes arrived."""
    client = ".".join(str(rng.randrange(low, high)) for low, high in ((1, 224), (0, 256),
                                                                      (0, 256), (1, 255)))
    asked = origin.version(path)
    try:
        status, location, _ = fetch(daemon_url + path.lstrip("/"), {"X-Forwarded-For": client})
    except OSError:
        return "redirector_5xx", ""
    answered = origin.version(path)
    if status >= 500:
        return "redirector_5xx", ""
    if status != 302:
        return "redirector_other", ""
    host = urlsplit(location).hostname or ""
    fallback = host == FALLBACK_HOST
    try:
        status, _, body = fetch(location, {})
    except OSError:
        return ("fallback_wrong" if fallback else "mirror_down"), host
    if fallback:
        held = range(asked, origin.version(path) + 1)
        right = status == 200 and any(body == content_of(path, v) for v in held)
        return ("fallback_right" if right else "fallback_wrong"), host
    if status == 404:
        return "mirror_404", host
    if status != 200:
        return "mirror_other", host
    if body == content_of(path, answered):
        return "right", host
    if any(body == content_of(path, v) for v in range(asked, answered)):
        return "raced", host
    return "stale", host


@attrs.define
class Churn:
    args: argparse.Namespace
    workdir: Path
    origin: Origin = attrs.field(init=False)
    trees: dict[str, HTTPTree] = attrs.field(init=False, factory=dict)
    fallback: HTTPTree = attrs.field(init=False)
    http_port: int = attrs.field(init=False, factory=free_port)
    rpc_port: int = attrs.field(init=False, factory=free_port)

    def __attrs_post_init__(self) -> None:
        paths = [f"/d{n % 10}/file-{n:04d}.bin" for n in range(self.args.files)]
        self.origin = Origin(self.workdir / "repository", paths)
        self.origin.create()
        for number, host in enumerate(MIRROR_HOSTS, 1):
            root = self.workdir / f"mirror{number}"
            shutil.copytree(self.origin.root, root)
            self.trees[f"m{number}"] = HTTPTree(root, host)
        self.fallback = HTTPTree(self.origin.root, FALLBACK_HOST)

    @property
    def daemon_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def ctl(self, *argv: str) -> None:
        done = subprocess.run(
            [str(BIN / "mirrorbits-ctl"), "-h", "127.0.0.1", "-p", str(self.rpc_port),
             "-P", "churn", *argv], capture_output=True, text=True, timeout=120,
            env=env_without_proxies())
        if done.returncode != 0:
            raise SystemExit(f"mirrorbits-ctl {' '.join(argv)} failed: {done.stderr.strip()}")

    def start_daemon(self, redis_address: str) -> subprocess.Popen[bytes]:
        rundir = self.workdir / "daemon"
        rundir.mkdir(exist_ok=True)
        (self.workdir / "geoip").mkdir(exist_ok=True)
        config = rundir / "mirrorbits.conf"
        config.write_text(render_config({
            "Repository": str(self.origin.root),
            "ListenAddress": f"127.0.0.1:{self.http_port}",
            "RPCListenAddress": f"127.0.0.1:{self.rpc_port}",
            "RPCPassword": "churn",
            "RedisAddress": redis_address,
            "GeoipDatabasePath": str(self.workdir / "geoip") + "/",
            "RepositoryScanInterval": "1",
            "ScanInterval": "1",
            "CheckInterval": "1",
            "WatchLocalFiles": "true",
            "OutputMode": "redirect",
            "Workers": str(self.args.workers),
            "VerifyInterval": str(self.args.verify_interval),
        }, f"TrustedProxies:\n  - 127.0.0.1\nFallbacks:\n  - URL: {self.fallback.url}\n"))
        env = env_without_proxies()
        env["TZ"] = "UTC"
        process = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", str(rundir / "twistd.log"),
             "mirrorbits", "--config", str(config)],
            cwd=rundir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for_port("127.0.0.1", self.rpc_port, timeout=30)
        wait_for_port("127.0.0.1", self.http_port, timeout=30)
        return process

    def register_mirrors(self, rsync_port: int) -> None:
        self.ctl("refresh")
        for name, tree in self.trees.items():
            self.ctl("add", "-http", tree.url, "-rsync",
                     f"rsync://127.0.0.1:{rsync_port}/{name}/", name)
            self.ctl("scan", "-enable", name)
        rng = random.Random(0)
        seen: set[str] = set()
        deadline = time.monotonic() + 90
        while len(seen) < len(self.trees):  # every mirror checked up and receiving users
            if time.monotonic() > deadline:
                raise SystemExit(f"only {sorted(seen)} received redirects")
            path = rng.choice(self.origin.paths)
            with contextlib.suppress(OSError):
                status, location, _ = fetch(self.daemon_url + path.lstrip("/"),
                                            {"X-Forwarded-For": f"10.0.{rng.randrange(256)}.1"})
                if status == 302:
                    seen.add(urlsplit(location).hostname or "")
                    seen.discard(FALLBACK_HOST)
            time.sleep(0.02)

    def plan(self, timeline: Timeline, rng: random.Random) -> None:
        start, end = self.args.before, self.args.before + self.args.churn
        names = sorted(self.trees)
        deleter, failing = self.trees[names[4]], self.trees[names[5]]
        for path in rng.sample(self.origin.paths, min(self.args.deleted, len(self.origin.paths))):
            target = deleter.root / path.lstrip("/")
            timeline.at(start, f"delete {path}", functools.partial(target.unlink, True))
        middle = start + max(0.0, (self.args.churn - self.args.down_seconds) / 2)
        timeline.at(middle, "mirror 6 down", failing.stop)
        timeline.at(middle + self.args.down_seconds, "mirror 6 up", failing.start)
        when = start
        while when < end:
            for path in rng.sample(self.origin.paths, self.args.publish_count):
                timeline.at(when, f"publish {path}", functools.partial(self.origin.publish, path))
                for name in names:
                    lag = rng.uniform(1.0, self.args.max_lag)
                    timeline.at(when + lag, f"{name} copies {path}",
                                functools.partial(copy_to, self.origin, self.trees[name].root,
                                                  path))
            when += self.args.publish_every

    def phase(self, elapsed: float) -> str:
        if elapsed < self.args.before:
            return "before"
        return "churn" if elapsed < self.args.before + self.args.churn else "settled"

    def load(self, started: float, outcomes: list[Outcome], rng: random.Random) -> None:
        """``--rate`` requests per second, paced on a shared schedule, over the files with
        a few popular ones."""
        total = int((self.args.before + self.args.churn + self.args.settled) * self.args.rate)
        weights = [1.0 / (1 + rank) ** 0.8 for rank in range(len(self.origin.paths))]
        picks = rng.choices(self.origin.paths, weights, k=total)
        next_index = iter(range(total))
        lock = threading.Lock()

        def client(seed: int) -> None:
            own = random.Random(seed)
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                delay = started + index / self.args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                phase = self.phase(index / self.args.rate)  # its planned time
                sent = time.monotonic() - started
                verdict, host = follow(self.daemon_url, self.origin, picks[index], own)
                with lock:
                    outcomes.append(Outcome(phase, verdict, round(sent, 3), picks[index], host))

        threads = [threading.Thread(target=client, args=(rng.random(),), daemon=True)
                   for _ in range(self.args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.args.before + self.args.churn + self.args.settled + 60)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    churn = Churn(args, workdir)
    redis = RedisServer(workdir=workdir / "redis")
    redis.start()
    daemon: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    try:
        with contextlib.ExitStack() as stack:
            for tree in (*churn.trees.values(), churn.fallback):
                tree.start()
                stack.callback(tree.stop)
            rsync_port = stack.enter_context(
                rsync_daemon(workdir, {name: tree.root for name, tree in churn.trees.items()})).port
            daemon = churn.start_daemon(redis.address)
            churn.register_mirrors(rsync_port)
            log("six mirrors receive users; the timeline starts")
            rng = random.Random(args.seed)
            timeline = Timeline()
            churn.plan(timeline, rng)
            started = time.monotonic()
            runner = threading.Thread(target=timeline.run, args=(started, stop), daemon=True)
            runner.start()
            outcomes: list[Outcome] = []
            churn.load(started, outcomes, rng)
            stop.set()
            runner.join(10)
            return report(args, churn, outcomes, timeline, started)
    finally:
        stop.set()
        if daemon is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
        redis.stop()


def share(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


def heads_per_hour(args: argparse.Namespace, churn: Churn,
                   started: float) -> dict[str, dict[str, int]]:
    """Per phase, the ``HEAD``s each mirror received (verification, health and freshness
    checks), per hour."""
    ends = {"before": args.before, "churn": args.before + args.churn,
            "settled": args.before + args.churn + args.settled}
    begins = {"before": 0.0, "churn": ends["before"], "settled": ends["churn"]}
    rates: dict[str, dict[str, int]] = {}
    for phase in PHASES:
        length = ends[phase] - begins[phase]
        rates[phase] = {
            name: round(sum(begins[phase] <= when - started < ends[phase]
                            for when in tree.heads) * 3600 / length) if length > 0 else 0
            for name, tree in sorted(churn.trees.items())}
    return rates


def report(args: argparse.Namespace, churn: Churn, outcomes: list[Outcome], timeline: Timeline,
           started: float) -> dict[str, object]:
    seconds = time.monotonic() - started
    heads = heads_per_hour(args, churn, started)
    phases: dict[str, dict[str, object]] = {}
    for phase in (*PHASES, "all"):
        verdicts = Counter(o.verdict for o in outcomes if phase in ("all", o.phase))
        requests = sum(verdicts.values())
        right = verdicts["right"] + verdicts["raced"] + verdicts["fallback_right"]
        fallback = verdicts["fallback_right"] + verdicts["fallback_wrong"]
        phases[phase] = {
            "requests": requests,
            "right_bytes": right,
            "right_percent": share(right, requests),
            "fallback": fallback,
            "fallback_percent": share(fallback, requests),
            "raced": verdicts["raced"],
            "wrong": {cause: verdicts[cause] for cause in (*CAUSES, "fallback_wrong")
                      if verdicts[cause]},
        }
    figures: dict[str, object] = {
        "seconds": round(seconds, 1),
        "files": args.files,
        "mirrors": len(churn.trees),
        "rate": args.rate,
        "versions_published": churn.origin.published,
        "timeline_errors": timeline.errors[:10],
        "timeline": timeline.done[:2000],
        "phases": phases,
        "heads_per_hour": heads,
        "heads_at": {name: [round(when - started, 2) for when in tree.heads]
                     for name, tree in sorted(churn.trees.items())},
        "wrong_answers": [[o.at, o.verdict, o.host, o.path] for o in sorted(
            (o for o in outcomes if o.verdict not in ("right", "fallback_right", "raced")),
            key=lambda o: o.at)][:500],
        "command": " ".join(sys.argv),
    }
    log(f"{len(outcomes)} requests in {seconds:.0f} s; {churn.origin.published} versions "
        f"published")
    for phase in (*PHASES, "all"):
        row = phases[phase]
        log(f"{phase:8} {row['requests']:6} requests  right bytes {row['right_percent']:7.3f} %"
            f"  fallback {row['fallback_percent']:6.3f} %  raced {row['raced']}"
            f"  wrong {row['wrong']}")
    for phase, rates in heads.items():
        log(f"{phase:8} HEADs per mirror per hour: "
            + "  ".join(f"{name} {rate}" for name, rate in rates.items()))
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with work_directory(args.workdir, "mirrorbits-churn-") as workdir:
        figures = run(args, workdir)
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
