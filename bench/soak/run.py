"""Soak: a long run at a high request rate with everything else the daemon does going on.

Run from the repository root: ``.venv/bin/python bench/soak/run.py --seconds 600``.

One daemon (monitoring on: repository scans, mirror scans over rsync, health checks), a
private ``redis-server``, two HTTP mirrors on 127.0.0.2 and 127.0.0.3 and an ``rsync
--daemon`` serving the same trees. While ``wrk`` (or the Python load generator) keeps the
redirect path busy, files are published and removed in the repository and on the mirrors,
the configuration is reloaded, scans are asked for, and a third of the way in the daemon upgrades
itself (``mirrorbits-ctl upgrade``). The daemon's resident memory and open descriptors are
sampled every few seconds; the report gives them after the warm-up and at the end, and every
answer that was not a 302 to a mirror or the origin (a socket error counts too).

Exit status 0 when no request failed, no control command failed and the descriptors did not
grow by more than ``--fd-slack``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402

from bench.harness import work_directory, write_json  # noqa: E402
from bench.redirect import loadgen  # noqa: E402
from tests.daemon import BIN, render_config  # noqa: E402
from tests.servers import (  # noqa: E402
    RedisServer,
    env_without_proxies,
    free_port,
    http_tree,
    rsync_daemon,
    wait_for_port,
)

MTIME = 1_700_000_000
MIRROR_HOSTS = ("127.0.0.2", "127.0.0.3")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the load")
    parser.add_argument("--warmup-seconds", type=float, default=20.0,
                        help="first sample of memory and descriptors after this")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--churn-every", type=float, default=10.0,
                        help="seconds between two publications and control commands")
    parser.add_argument("--no-upgrade", action="store_true")
    parser.add_argument("--fd-slack", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_file(root: Path, path: str, content: bytes) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    os.utime(target, (MTIME, MTIME))


@attrs.define
class Sample:
    at: float
    pid: int
    rss_kib: int
    fds: int


def sample(pid: int, at: float) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:"))
    return Sample(at, pid, rss, fds)


@attrs.define
class Soak:
    args: argparse.Namespace
    workdir: Path
    repository: Path = attrs.field(init=False)
    trees: dict[str, Path] = attrs.field(init=False, factory=dict)
    paths: list[str] = attrs.field(init=False, factory=list)
    http_port: int = attrs.field(init=False, factory=free_port)
    rpc_port: int = attrs.field(init=False, factory=free_port)
    ctl_failures: list[str] = attrs.field(init=False, factory=list)
    commands: int = 0

    def __attrs_post_init__(self) -> None:
        self.repository = self.workdir / "repository"
        self.trees = {name: self.workdir / f"mirror-{name}" for name in ("a", "b")}
        self.paths = [f"/r{n % 8}/file-{n:05d}.bin" for n in range(self.args.files)]
        for path in self.paths:
            content = f"{path}\n".encode()
            for root in (self.repository, *self.trees.values()):
                write_file(root, path, content)

    @property
    def pidfile(self) -> Path:
        return self.workdir / "daemon" / "mirrorbits.pid"

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None

    def ctl(self, *argv: str, timeout: float = 120) -> None:
        self.commands += 1
        done = subprocess.run(
            [str(BIN / "mirrorbits-ctl"), "-h", "127.0.0.1", "-p", str(self.rpc_port),
             "-P", "soak", *argv], capture_output=True, text=True, timeout=timeout,
            env=env_without_proxies())
        if done.returncode != 0 and "scan already in progress" in done.stderr:
            log(f"mirrorbits-ctl {' '.join(argv)}: an automatic scan was running")
        elif done.returncode != 0:
            self.ctl_failures.append(f"{' '.join(argv)}: {done.stderr.strip()}")
            log(f"mirrorbits-ctl {' '.join(argv)} failed: {done.stderr.strip()}")

    def start_daemon(self, redis_address: str) -> subprocess.Popen[bytes]:
        rundir = self.workdir / "daemon"
        rundir.mkdir(exist_ok=True)
        (self.workdir / "geoip").mkdir(exist_ok=True)
        config = rundir / "mirrorbits.conf"
        config.write_text(render_config({
            "Repository": str(self.repository),
            "ListenAddress": f"127.0.0.1:{self.http_port}",
            "RPCListenAddress": f"127.0.0.1:{self.rpc_port}",
            "RPCPassword": "soak",
            "RedisAddress": redis_address,
            "GeoipDatabasePath": str(self.workdir / "geoip") + "/",
            "RepositoryScanInterval": "1",
            "ScanInterval": "1",
            "CheckInterval": "1",
            "OutputMode": "redirect",
        }))
        env = env_without_proxies()
        env["TZ"] = "UTC"
        process = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile", str(self.pidfile), "--logfile",
             str(rundir / "twistd.log"), "mirrorbits", "--config", str(config)],
            cwd=rundir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for_port("127.0.0.1", self.rpc_port, timeout=30)
        wait_for_port("127.0.0.1", self.http_port, timeout=30)
        return process

    def set_up(self, *argv: str) -> None:
        """A set-up command, repeated while the daemon is still starting (its Redis not ready,
        the repository not indexed yet): only the soak's own commands are counted."""
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(
                [str(BIN / "mirrorbits-ctl"), "-h", "127.0.0.1", "-p", str(self.rpc_port),
                 "-P", "soak", *argv], capture_output=True, text=True, timeout=120,
                env=env_without_proxies())
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"mirrorbits-ctl {' '.join(argv)}: {done.stderr.strip()}")
            time.sleep(0.5)

    def register_mirrors(self, urls: dict[str, str], rsync_port: int) -> None:
        self.set_up("refresh")
        for name, url in urls.items():
            self.set_up("add", "-http", url, "-rsync", f"rsync://127.0.0.1:{rsync_port}/{name}/",
                        name)
            self.set_up("scan", "-enable", name)
        deadline = time.monotonic() + 60
        while self.redirect(self.paths[0]) is None:  # health checks passed
            if time.monotonic() > deadline:
                raise SystemExit("the mirrors never received a redirect")
            time.sleep(0.2)

    def redirect(self, path: str) -> str | None:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            connection.request("HEAD", path)
            response = connection.getresponse()
            response.read()
            location = response.getheader("Location") or ""
        finally:
            connection.close()
        return location if response.status == 302 and "127.0.0." in location else None

    def churn(self, turn: int, rng: random.Random) -> None:
        """One step of everyday life: publish or remove a file, reload, ask for a scan."""
        path = f"/new/turn-{turn:05d}.bin"
        content = f"{path} {turn}\n".encode()
        write_file(self.repository, path, content)
        for root in self.trees.values():
            if rng.random() < 0.8:  # a mirror that lags
                write_file(root, path, content)
        if turn >= 3:
            old = f"/new/turn-{turn - 3:05d}.bin"
            for root in (self.repository, *self.trees.values()):
                (root / old.lstrip("/")).unlink(missing_ok=True)
        action = turn % 3
        if action == 0:
            self.ctl("reload")
        elif action == 1:
            self.ctl("scan", rng.choice(sorted(self.trees)))
        else:
            self.ctl("refresh")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    soak = Soak(args, workdir)
    redis = RedisServer(workdir=workdir / "redis")
    redis.start()
    paths_file, ips_file = workdir / "paths.txt", workdir / "ips.txt"
    paths_file.write_text("".join(p + "\n" for p in soak.paths))
    ips_file.write_text("".join(f"100.{64 + n % 32}.{n % 250}.{1 + n % 200}\n"
                                for n in range(500)))
    daemon: subprocess.Popen[bytes] | None = None
    try:
        with contextlib.ExitStack() as stack:
            urls = {name: stack.enter_context(http_tree(tree, host))
                    for (name, tree), host in zip(soak.trees.items(), MIRROR_HOSTS, strict=True)}
            rsync_port = stack.enter_context(rsync_daemon(workdir, soak.trees)).port
            daemon = soak.start_daemon(redis.address)
            soak.register_mirrors(urls, rsync_port)
            log("mirrors registered; load starts")
            return measure(soak, args, paths_file, ips_file)
    finally:
        pid = soak.pid()
        for target in {pid, daemon.pid if daemon is not None else None} - {None}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGTERM)  # type: ignore[arg-type]
        if daemon is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
        redis.stop()


def measure(soak: Soak, args: argparse.Namespace, paths_file: Path,
            ips_file: Path) -> dict[str, object]:
    result: list[loadgen.LoadResult] = []
    pattern = "^http://127%.0%.0%.[23]:%d+/"

    def load() -> None:
        if loadgen.wrk_path() is not None:
            result.append(loadgen.run_wrk(f"http://127.0.0.1:{soak.http_port}/", paths_file,
                                          ips_file, pattern, args.seconds, args.threads,
                                          args.connections))
        else:
            result.append(loadgen.run_python(
                "127.0.0.1", soak.http_port, soak.paths,
                ips_file.read_text().split(), r"^http://127\.0\.0\.[23]:\d+/", args.seconds,
                args.threads, args.connections))

    loader = threading.Thread(target=load, daemon=True)
    started = time.monotonic()
    loader.start()
    rng = random.Random(7)
    samples: list[Sample] = []
    upgraded = args.no_upgrade
    successor = False
    next_churn = started + args.churn_every
    next_sample = started + args.warmup_seconds
    turn = 0
    while loader.is_alive() and time.monotonic() < started + args.seconds + 120:
        now = time.monotonic()
        if now >= next_sample:
            pid = soak.pid()
            taken = sample(pid, now - started) if pid is not None else None
            if taken is not None:
                samples.append(taken)
            next_sample = now + 5.0
        if now >= next_churn and now < started + args.seconds - 5:
            soak.churn(turn, rng)
            turn += 1
            next_churn = time.monotonic() + args.churn_every
        if not upgraded and now >= started + args.seconds / 3:
            before = soak.pid()
            soak.ctl("upgrade")
            wait = time.monotonic() + 30
            while soak.pid() in (None, before) and time.monotonic() < wait:
                time.sleep(0.1)
            log(f"upgraded: pid {before} -> {soak.pid()}")
            upgraded = True
            successor = soak.pid() not in (None, before)
        time.sleep(0.2)
    loader.join(60)
    if not result:
        raise SystemExit("the load generator did not report")
    return report(soak, args, result[0], samples, successor)


def report(soak: Soak, args: argparse.Namespace, load: loadgen.LoadResult,
           samples: list[Sample], successor: bool) -> dict[str, object]:
    # compare the first and the last sample of the process that served at the end (an upgrade
    # replaces the process: its own growth is what a leak would show)
    last = samples[-1] if samples else None
    same = [s for s in samples if last is not None and s.pid == last.pid]
    first = same[0] if same else None
    failed = load.other_status + load.bad_location + load.socket_errors
    figures: dict[str, object] = {
        "seconds": round(load.seconds, 1),
        "requests": load.requests,
        "requests_per_s": round(load.rate),
        "p99_ms": load.p99_ms,
        "ok_302": load.ok_302,
        "failed": failed,
        "first_bad": load.first_bad,
        "upgraded": successor,
        "control_commands": soak.commands,
        "control_failures": soak.ctl_failures,
        "samples": [attrs.asdict(s) for s in samples],
        "first_sample": attrs.asdict(first) if first else None,
        "last_sample": attrs.asdict(last) if last else None,
        "command": load.command,
    }
    log(json.dumps(figures, indent=2))
    for pid in dict.fromkeys(s.pid for s in samples):
        own = [s for s in samples if s.pid == pid]
        log(f"process {pid}: RSS {own[0].rss_kib / 1024:.1f} MiB at {own[0].at:.0f} s -> "
            f"{own[-1].rss_kib / 1024:.1f} MiB at {own[-1].at:.0f} s; descriptors "
            f"{own[0].fds} -> {own[-1].fds}")
    log(f"{load.requests} requests in {load.seconds:.0f} s ({load.rate:.0f}/s), {failed} failed; "
        f"{soak.commands} control commands, {len(soak.ctl_failures)} failed")
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with work_directory(args.workdir, "mirrorbits-soak-") as workdir:
        figures = run(args, workdir)
    write_json(args.json, figures)
    first, last = figures["first_sample"], figures["last_sample"]
    grew = (int(last["fds"]) - int(first["fds"])
            if isinstance(first, dict) and isinstance(last, dict) else 0)
    ok = figures["failed"] == 0 and not figures["control_failures"] and grew <= args.fd_slack
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

