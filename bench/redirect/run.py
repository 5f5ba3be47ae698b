"""Redirect benchmark: requests/s of the daemon's full redirect path over a bare twisted.web 302.

Run from the repository root: ``.venv/bin/python bench/redirect/run.py --seconds 10``.
See bench/README.md for what is measured and how to read the report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402
import redis  # noqa: E402

from bench.harness import command_line, report_head, work_directory, write_json  # noqa: E402
from bench.redirect import dataset, loadgen  # noqa: E402
from bench.redirect.loadgen import LoadResult, Response  # noqa: E402
from tests.daemon import DaemonProcess, base_config  # noqa: E402
from tests.servers import RedisServer, env_without_proxies, free_port, wait_for_port  # noqa: E402

TARGET = 0.8  # daemon req/s over the baseline's, both with --workers processes
P99_TARGET = 2.0  # daemon p99 over the baseline's, at most
REFERENCE_TARGET = 1.0  # daemon req/s over the reference (Go) Mirrorbits', at least
MIRROR_PATTERN = r"^https?://mirror\.[a-z0-9]+\.example\.org/"
MIRROR_LUA_PATTERN = "^https?://mirror%.[%w]+%.example%.org/"
BARE_PATTERN, BARE_LUA_PATTERN = r"^http://x/$", "^http://x/$"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--threads", type=int, default=2, help="load generator threads")
    parser.add_argument("--connections", type=int, default=50, help="keep-alive connections")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure baseline then daemon this many times (median ratio)")
    parser.add_argument("--warmup-seconds", type=float, default=1.0,
                        help="unmeasured load on each server before each measurement")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--check-every-answer", action="store_true",
                        help="wrk checks each measured answer's status and Location in Lua "
                             "(costs wrk more per answer of the daemon, whose answers are "
                             "larger, than per answer of the baseline); by default the "
                             "measurements only count, and the verification passes before "
                             "and after them check")
    parser.add_argument("--mirrors", type=int, default=60)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--networks", type=int, default=3_000, help="GeoIP networks")
    parser.add_argument("--clients", type=int, default=5_000, help="distinct client addresses")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1,
                        help="the daemon's Workers setting (HTTP worker processes)")
    parser.add_argument("--cold-seconds", type=float, default=5.0,
                        help="load the daemon this long as soon as it serves, before the "
                             "verification pass (the warm-up window); 0: skip")
    parser.add_argument("--reference", metavar="PATH",
                        help="a Go Mirrorbits binary: served on the same Redis data with a "
                             "configuration the bench writes, measured in each round")
    parser.add_argument("--download-log", action="store_true",
                        help="also write the daemon's download log (LogDir)")
    parser.add_argument("--profile", metavar="FILE",
                        help="after measuring, record the daemon under load with py-spy "
                             "(FILE.svg: flame graph, FILE.txt: collapsed stacks, "
                             "else speedscope JSON)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workdir", metavar="DIR", help="keep the data set here (not removed)")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Bench:
    """The servers and the data set of one benchmark run."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.plan = dataset.plan(args.seed, args.mirrors, args.files, args.networks, args.clients)
        self.redis = RedisServer(workdir=workdir / "redis")
        self.daemon: DaemonProcess | None = None
        self.bare: subprocess.Popen[bytes] | None = None
        self.bare_port = 0
        self.reference: subprocess.Popen[bytes] | None = None
        self.reference_port = 0
        self.startup_seconds = 0.0
        self.paths_file = workdir / "paths.txt"
        self.ips_file = workdir / "ips.txt"

    # --- set-up ---------------------------------------------------------------------------

    def build(self) -> None:
        started = time.monotonic()
        repository = self.workdir / "repository"
        dataset.write_repository(repository, self.plan.files)
        dataset.write_geoip(self.workdir / "geoip", self.plan.networks)
        self.paths_file.write_text("".join(f.path + "\n" for f in self.plan.files))
        self.ips_file.write_text("".join(ip + "\n" for ip in self.plan.client_ips))
        self.redis.start()
        client = redis.Redis(host=self.redis.host, port=self.redis.port, decode_responses=True)
        commands = dataset.write_redis(client, self.plan)
        client.close()
        log(f"data set ready in {time.monotonic() - started:.1f} s: {len(self.plan.mirrors)} "
            f"mirrors, {len(self.plan.files)} files, {len(self.plan.networks)} GeoIP networks, "
            f"{len(self.plan.client_ips)} client IPs, {commands} Redis writes")

    def start(self) -> None:
        extra = {"GeoipDatabasePath": str(self.workdir / "geoip") + "/",
                 "Workers": str(self.args.workers)}
        if self.args.download_log:
            (self.workdir / "logs").mkdir(exist_ok=True)
            extra["LogDir"] = str(self.workdir / "logs")
        values = base_config(self.workdir / "repository", self.redis.address, **extra)
        self.daemon = DaemonProcess(workdir=self.workdir / "daemon", values=values,
                                    args=["--no-monitor"])
        started = time.monotonic()
        self.daemon.start()
        self.wait_serving()
        self.startup_seconds = time.monotonic() - started
        log(f"daemon serves {self.startup_seconds:.1f} s after its start (cache filled)")
        self.bare_port = free_port()
        self.bare = subprocess.Popen(
            [sys.executable, "-m", "bench.redirect.bare", str(self.bare_port),
             str(self.args.workers)], cwd=ROOT, env=env_without_proxies(),
        )
        wait_for_port("127.0.0.1", self.bare_port, timeout=20)
        if self.args.reference:
            self.start_reference(Path(self.args.reference))

    def wait_serving(self, timeout: float = 120.0) -> None:
        """Until every HTTP process of the daemon has filled its cache and accepts (its
        ``HTTP starting on`` line, which follows the fill and the collector's set-up)."""
        assert self.daemon is not None
        deadline = time.monotonic() + timeout
        while True:
            text = self.daemon.log()
            filled = text.count("Cache filled with") + text.count("serving anyway")
            if filled >= self.args.workers and text.count("HTTP starting on") >= self.args.workers:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not fill its cache in {timeout:.0f} s:\n{text}")
            time.sleep(0.05)

    def start_reference(self, binary: Path) -> None:
        """The Go Mirrorbits daemon on the same Redis data, without its monitor; its output
        goes to ``reference.log`` in the work directory."""
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"--reference {binary}: not an executable file")
        self.reference_port = free_port()
        config = self.workdir / "reference.conf"
        config.write_text(
            f"Repository: {self.workdir / 'repository'}\n"
            f"ListenAddress: 127.0.0.1:{self.reference_port}\n"
            f"RPCListenAddress: 127.0.0.1:{free_port()}\n"
            f"RedisAddress: {self.redis.address}\n"
            f"GeoipDatabasePath: {self.workdir / 'geoip'}/\n"
            "OutputMode: redirect\nGzip: false\nTrustedProxies: [127.0.0.1]\n")
        log_path = self.workdir / "reference.log"
        with open(log_path, "wb") as output:
            self.reference = subprocess.Popen(
                [str(binary), "daemon", "-config", str(config), "-monitor=false",
                 "-p", str(self.workdir / "reference.pid")],
                cwd=self.workdir, env=env_without_proxies(), stdout=output,
                stderr=subprocess.STDOUT)
        wait_listening(self.reference, self.reference_port, log_path, f"--reference {binary}")

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        for process in (self.bare, self.reference):
            if process is not None:
                process.terminate()
                process.wait(10)
        self.redis.stop()

    # --- verification and measurement -------------------------------------------------------

    def verify(self, when: str = "verification/warm-up pass") -> dict[str, Any]:
        """One pass over every path (the first also fills the daemon's caches), each answer
        checked against the exact set of URLs the data set allows."""
        assert self.daemon is not None
        allowed = self.plan.allowed_locations()
        ips = self.plan.client_ips
        requests = [(entry.path, ips[i % len(ips)]) for i, entry in enumerate(self.plan.files)]
        requests += [(entry.path, ips[(i + len(requests)) % len(ips)])
                     for i, entry in enumerate(self.plan.files) if i % 2]

        def ok(path: str, response: Response) -> bool:
            return response.status == 302 and response.location in allowed[path]

        daemon = loadgen.verify_pass(*self.daemon.http, requests, ok)
        log(f"{when}: {daemon.checked} requests in {daemon.seconds:.1f} s, "
            f"{daemon.wrong} wrong")
        for example in daemon.examples:
            log(f"  wrong answer: {example}")
        bare = loadgen.verify_pass(
            "127.0.0.1", self.bare_port, requests[:200],
            lambda path, r: r.status == 302 and r.location == "http://x/")
        result: dict[str, Any] = {
            "daemon_checked": daemon.checked, "daemon_wrong": daemon.wrong,
            "daemon_cold_rps": round(daemon.checked / max(daemon.seconds, 1e-9)),
            "daemon_examples": list(daemon.examples), "expected": len(requests),
            "bare_checked": bare.checked, "bare_wrong": bare.wrong}
        if self.reference is not None:
            # The same check (and, the first time, the same cache warm-up) for the reference:
            # wrk only counts its 4xx/5xx, not a redirect to a wrong mirror.
            reference = loadgen.verify_pass("127.0.0.1", self.reference_port, requests, ok)
            log(f"{when}, reference: {reference.checked} requests in "
                f"{reference.seconds:.1f} s, {reference.wrong} wrong")
            for example in reference.examples:
                log(f"  wrong reference answer: {example}")
            result.update(reference_checked=reference.checked,
                          reference_wrong=reference.wrong)
        return result

    def measure(self, port: int, pattern: str, lua_pattern: str, seconds: float) -> LoadResult:
        args = self.args
        if self.use_wrk:
            return loadgen.run_wrk(f"http://127.0.0.1:{port}", self.paths_file, self.ips_file,
                                   lua_pattern, seconds, args.threads, args.connections,
                                   check=args.check_every_answer)
        return loadgen.run_python("127.0.0.1", port, [f.path for f in self.plan.files],
                                  list(self.plan.client_ips), pattern, seconds, args.threads,
                                  args.connections)

    @property
    def use_wrk(self) -> bool:
        if self.args.loadgen == "python":
            return False
        if self.args.loadgen == "wrk" and loadgen.wrk_path() is None:
            raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install wrk)")
        return loadgen.wrk_path() is not None

    def cold(self) -> LoadResult | None:
        """The daemon loaded as soon as it serves: its first seconds (``--cold-seconds``)."""
        assert self.daemon is not None
        if self.args.cold_seconds <= 0:
            return None
        port = self.daemon.http[1]
        return self.measured_cpu(
            self.daemon.process.pid if self.daemon.process is not None else None,
            lambda: self.measure(port, MIRROR_PATTERN, MIRROR_LUA_PATTERN,
                                 self.args.cold_seconds))

    def bare_cold(self) -> LoadResult | None:
        """The baseline's own first seconds (``--cold-seconds``): started with the daemon's,
        never loaded before. What the same load generator and host give any server just
        started, next to the daemon's first seconds."""
        assert self.bare is not None
        if self.args.cold_seconds <= 0:
            return None
        return self.measured_cpu(
            self.bare.pid, lambda: self.measure(self.bare_port, BARE_PATTERN, BARE_LUA_PATTERN,
                                                self.args.cold_seconds))

    def measured_cpu(self, pid: int | None, load: Callable[[], LoadResult]) -> LoadResult:
        """``load()``'s result with the CPU per request of ``pid`` and its children meanwhile
        (the figure a shared machine moves least), and Redis' (the daemon's statistics)."""
        redis_pid = self.redis.process.pid if self.redis.process is not None else None
        pids = (pid, redis_pid)
        before = [tree_cpu_seconds(p) if p is not None else None for p in pids]
        result = load()
        after = [tree_cpu_seconds(p) if p is not None else None for p in pids]
        per_request = [(b - a) / result.requests * 1e6
                       if a is not None and b is not None and result.requests else None
                       for a, b in zip(before, after, strict=True)]
        return attrs.evolve(result, server_cpu_us=per_request[0], redis_cpu_us=per_request[1])

    def round(self) -> list[LoadResult]:
        """Baseline, daemon (and reference) measured one after the other."""
        assert self.daemon is not None and self.daemon.process is not None
        assert self.bare is not None
        results = []
        servers = [(self.bare.pid, self.bare_port, BARE_PATTERN, BARE_LUA_PATTERN),
                   (self.daemon.process.pid, self.daemon.http[1], MIRROR_PATTERN,
                    MIRROR_LUA_PATTERN)]
        if self.reference is not None:
            servers.append((self.reference.pid, self.reference_port, MIRROR_PATTERN,
                            MIRROR_LUA_PATTERN))
        for pid, port, pattern, lua in servers:
            if self.args.warmup_seconds > 0:
                self.measure(port, pattern, lua, self.args.warmup_seconds)
            results.append(self.measured_cpu(
                pid, lambda port=port, pattern=pattern, lua=lua: self.measure(
                    port, pattern, lua, self.args.seconds)))
        return results

    def daemon_rss_mib(self) -> float | None:
        """The resident memory of the daemon and its HTTP workers now (Linux)."""
        assert self.daemon is not None and self.daemon.process is not None
        total = None
        for pid in [self.daemon.process.pid, *children(self.daemon.process.pid)]:
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmRSS:"):
                            total = (total or 0.0) + int(line.split()[1]) / 1024
            except OSError:
                pass
        return total

    def profile(self, target: str) -> str:
        """Record the daemon with py-spy while loading it; returns a message."""
        assert self.daemon is not None and self.daemon.process is not None
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            return "py-spy not found (.venv/bin/pip install py-spy)"
        fmt = {".svg": "flamegraph", ".txt": "raw"}.get(Path(target).suffix, "speedscope")
        duration = max(2, round(self.args.seconds))
        recorder = subprocess.Popen(
            [spy, "record", "-p", str(self.daemon.process.pid), "-d", str(duration), "-r", "250",
             "-f", fmt, "-o", target], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        self.measure(self.daemon.http[1], MIRROR_PATTERN, MIRROR_LUA_PATTERN, duration)
        _, err = recorder.communicate(timeout=duration + 60)
        if recorder.returncode != 0:
            return f"py-spy failed: {err.decode(errors='replace').strip()}"
        return f"py-spy profile written to {target}"


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) used so far by process ``pid`` (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The running children of ``pid`` (the HTTP workers), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """:func:`cpu_seconds` of ``pid`` plus its running children's."""
    total = cpu_seconds(pid)
    if total is None:
        return None
    return total + sum(cpu_seconds(child) or 0.0 for child in children(pid))


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def describe(name: str, result: LoadResult) -> list[str]:
    cpu = "n/a" if result.server_cpu_us is None else f"{result.server_cpu_us:.1f} us"
    if result.checked:
        answers = (f"  302 + mirror   {result.ok_302}   non-302 {result.other_status}   "
                   f"bad Location {result.bad_location}   socket errors {result.socket_errors}"
                   + (f"   first problem: {result.first_bad}" if result.first_bad else ""))
    else:
        answers = (f"  answers        {result.ok_302} below 400, {result.other_status} 4xx/5xx, "
                   f"socket errors {result.socket_errors} (counted by wrk; the verification "
                   "passes check each answer)")
    lines = [
        f"{name}:",
        f"  requests/s     {result.rate:10.0f}   ({result.requests} requests in "
        f"{result.seconds:.2f} s)",
        f"  latency        p50 {fmt_ms(result.p50_ms)}, p90 {fmt_ms(result.p90_ms)}, "
        f"p99 {fmt_ms(result.p99_ms)}",
        answers,
        f"  server CPU     {cpu} per request (user + system)",
    ]
    if result.redis_cpu_us is not None:
        lines.append(f"  Redis CPU      {result.redis_cpu_us:.1f} us per request (the bench's "
                     "redis-server: the daemon's statistics, same cores)")
    if result.loadgen_cpu_us is not None:
        lines.append(f"  load gen CPU   {result.loadgen_cpu_us:.1f} us per request (wrk, same "
                     "cores)")
    return [*lines, f"  command        {result.command}"]


def report(args: argparse.Namespace, verify: dict[str, Any], rounds: list[list[LoadResult]],
           rss_mib: float | None = None, cold: LoadResult | None = None,
           startup_seconds: float = 0.0,
           verify_after: dict[str, Any] | None = None,
           bare_cold: LoadResult | None = None) -> dict[str, object]:
    ratios = [pair[1].rate / pair[0].rate if pair[0].rate else 0.0 for pair in rounds]
    ratio = statistics.median(ratios)
    middle = rounds[len(rounds) // 2] if len(rounds) % 2 else rounds[-1]
    bare, daemon = middle[0], middle[1]
    reference = middle[2] if len(middle) > 2 else None
    after = verify_after or {"daemon_checked": 0, "daemon_wrong": 0, "bare_checked": 0,
                             "bare_wrong": 0, "expected": 0}
    problems = (int(verify["daemon_wrong"]) + int(verify["bare_wrong"])
                + int(after["daemon_wrong"]) + int(after["bare_wrong"])
                + int(verify.get("reference_wrong", 0)) + int(after.get("reference_wrong", 0))
                + sum(r.other_status + r.bad_location for row in rounds for r in row)
                + (cold.other_status + cold.bad_location if cold is not None else 0)
                + (bare_cold.other_status + bare_cold.bad_location if bare_cold else 0))
    processes = f"{args.workers} process{'es' if args.workers > 1 else ''}"
    lines = [
        *report_head("redirect", " (at the end)"),
        f"data set     {args.mirrors} mirrors, {args.files} files, {args.networks} GeoIP "
        f"networks, {args.clients} client IPs (seed {args.seed})",
        f"load         {args.threads} threads, {args.connections} connections, "
        f"{args.seconds:g} s per measurement, loopback, keep-alive; servers: {processes} each",
        f"start-up     the daemon served {startup_seconds:.1f} s after its start (caches filled)",
        f"verification {verify['daemon_checked']}/{verify['expected']} redirects checked "
        f"against the data set, {verify['daemon_wrong']} wrong (16 connections: "
        f"{verify['daemon_cold_rps']} req/s); "
        f"baseline {verify['bare_checked']} checked, {verify['bare_wrong']} wrong"
        + _reference_checks(verify),
    ]
    if verify_after is not None:
        lines.append(
            f"after rounds {after['daemon_checked']}/{after['expected']} redirects checked "
            f"again after the measurements, {after['daemon_wrong']} wrong; baseline "
            f"{after['bare_checked']} checked, {after['bare_wrong']} wrong"
            + _reference_checks(after))
    if cold is not None:
        lines += describe(f"mirrorbits, first {args.cold_seconds:g} s after it serves", cold)
    if bare_cold is not None:
        lines += describe(f"bare twisted.web 302, its first {args.cold_seconds:g} s", bare_cold)
    for index, row in enumerate(rounds, start=1):
        if len(rounds) > 1:
            lines.append(f"-- round {index}: ratio {ratios[index - 1]:.3f}")
        lines += describe(f"bare twisted.web 302 (baseline, {processes})", row[0])
        lines += describe("mirrorbits full redirect path", row[1])
        if len(row) > 2:
            lines += describe("reference (Go) Mirrorbits", row[2])
    # Each server's p99 over the run: the median of its rounds' (one round's alone swings
    # 2.2-5.2 ms for the same baseline on this host).
    bare_p99, daemon_p99 = (_median([row[index].p99_ms for row in rounds]) for index in (0, 1))
    p99 = _ratio(daemon_p99, bare_p99)
    cold_p99 = _ratio(cold.p99_ms if cold else None, bare_p99)
    if len(rounds) > 1:
        per_round = ", ".join(_fmt_ratio(_ratio(row[1].p99_ms, row[0].p99_ms)).strip()
                              for row in rounds)
        lines.append(f"p99 ratio per round: {per_round}")
    ref = _ratio(daemon.rate, reference.rate) if reference is not None else None
    lines += [
        "",
        f"RATIO  {ratio:.3f}  (daemon req/s / baseline req/s"
        + (f", median of {len(rounds)} rounds" if len(rounds) > 1 else "") + ")  "
        + _verdict(ratio, TARGET, at_least=True),
        f"P99    {_fmt_ratio(p99)}  (daemon p99 / baseline p99, each the median of the "
        "rounds')  "
        + _verdict(p99, P99_TARGET, at_least=False),
        f"COLD   {_fmt_ratio(cold_p99)}  (daemon p99 in its first {args.cold_seconds:g} s / "
        f"baseline p99)  " + _verdict(cold_p99, P99_TARGET, at_least=False),
        *([f"       the baseline's own first {args.cold_seconds:g} s: "
           f"{_fmt_ratio(_ratio(bare_cold.p99_ms, bare_p99)).strip()} x the baseline p99 "
           f"(p99 {bare_cold.p99_ms} ms)"] if bare_cold is not None else []),
        f"GO     {_fmt_ratio(ref)}  (daemon req/s / reference Mirrorbits req/s)  "
        + (_verdict(ref, REFERENCE_TARGET, at_least=True) if args.reference
           else "not available (--reference PATH)"),
        f"daemon RSS   {'n/a' if rss_mib is None else f'{rss_mib:.0f} MiB'} after the rounds "
        f"(daemon + workers)",
    ]
    if problems:
        lines.append(f"WARNING {problems} wrong answers: the ratio is meaningless")
    print("\n".join(lines), flush=True)
    return {
        "ratio": ratio, "ratios": ratios, "target": TARGET, "wrong_answers": problems,
        "p99_ratio": p99, "cold_p99_ratio": cold_p99, "reference_ratio": ref,
        "baseline_rps": bare.rate, "daemon_rps": daemon.rate,
        "baseline": _result_json(bare), "daemon": _result_json(daemon),
        "cold": _result_json(cold) if cold is not None else None,
        "baseline_cold": _result_json(bare_cold) if bare_cold is not None else None,
        "baseline_cold_p99_ratio": _ratio(bare_cold.p99_ms if bare_cold else None, bare_p99),
        "reference": _result_json(reference) if reference is not None else None,
        "startup_seconds": startup_seconds, "load_average": os.getloadavg(),
        "verification": verify, "verification_after": verify_after,
        "command": command_line(),
        "daemon_rss_mib": rss_mib,
    }


def _reference_checks(verify: dict[str, Any]) -> str:
    """The reference's part of a verification line (empty without ``--reference``)."""
    if "reference_checked" not in verify:
        return ""
    return (f"; reference {verify['reference_checked']} checked, "
            f"{verify['reference_wrong']} wrong")


def wait_listening(process: subprocess.Popen[bytes], port: int, log_path: Path, name: str,
                   timeout: float = 30.0) -> None:
    """Until ``process`` accepts on 127.0.0.1:``port``; if it exits first or never listens,
    a one-line SystemExit with the last line of its log."""
    deadline = time.monotonic() + timeout
    while True:
        status = process.poll()
        if status is not None:
            raise SystemExit(f"{name}: exited with status {status}: {_last_line(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            process.wait(10)
            raise SystemExit(f"{name}: not listening on port {port} after {timeout:g} s: "
                             f"{_last_line(log_path)}")
        time.sleep(0.05)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    lines = [line.strip() for line in lines if line.strip()]
    return lines[-1] if lines else "(no output)"


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


def _fmt_ratio(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def _verdict(value: float | None, target: float, *, at_least: bool) -> str:
    if value is None:
        return ""
    met = value >= target if at_least else value <= target
    return f"{'meets' if met else 'MISSES'} the target ({'>=' if at_least else '<='} {target})"


def _result_json(result: LoadResult) -> dict[str, object]:
    return {"rps": result.rate, "requests": result.requests, "seconds": result.seconds,
            "server_cpu_us": result.server_cpu_us, "loadgen_cpu_us": result.loadgen_cpu_us,
            "redis_cpu_us": result.redis_cpu_us,
            "checked_each_answer": result.checked,
            "ok_302": result.ok_302, "non_302": result.other_status,
            "bad_location": result.bad_location, "socket_errors": result.socket_errors,
            "p50_ms": result.p50_ms, "p90_ms": result.p90_ms, "p99_ms": result.p99_ms,
            "command": result.command}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.seconds <= 0 or args.threads < 1 or args.connections < args.threads:
        raise SystemExit("--seconds must be > 0 and --connections >= --threads >= 1")
    for name in ("json", "profile", "workdir"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    os.chdir(ROOT)
    with work_directory(Path(args.workdir) if args.workdir else None, "mb-bench-") as workdir:
        run(args, workdir)
    return 0


def run(args: argparse.Namespace, workdir: Path) -> None:
    bench = Bench(args, workdir)
    try:
        bench.build()
        bench.start()
        log(f"load generator: {'wrk' if bench.use_wrk else 'python (wrk not found)'}")
        cold = bench.cold()
        bare_cold = bench.bare_cold()
        verify = bench.verify()
        rounds = [bench.round() for _ in range(max(1, args.rounds))]
        rss_mib = bench.daemon_rss_mib()
        verify_after = bench.verify("verification after the measurements")
        summary = report(args, verify, rounds, rss_mib, cold, bench.startup_seconds,
                         verify_after, bare_cold)
        if args.profile:
            log(bench.profile(args.profile))
        write_json(args.json, summary)
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
