"""Load generators: ``wrk`` with ``rotate.lua`` when installed, else raw keep-alive sockets.

Both send ``GET <path>`` with ``X-Forwarded-For: <ip>``, rotating over the given paths and
addresses, and check every answer is a 302 whose ``Location`` matches a pattern. The Python
generator also drives the verification pass (:func:`verify_pass`), where each Location is
compared with the exact set of acceptable URLs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from attrs import define, field, frozen

LUA_SCRIPT = Path(__file__).with_name("rotate.lua")
USER_AGENT = b"mirrorbits-bench"


@frozen
class LoadResult:
    """One bounded measurement."""

    requests: int
    seconds: float
    ok_302: int
    other_status: int
    bad_location: int
    socket_errors: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    first_bad: str
    command: str
    server_cpu_us: float | None = None  # the server's CPU (user + system) per request
    loadgen_cpu_us: float | None = None  # the load generator's, per request (wrk only)
    redis_cpu_us: float | None = None  # the bench's redis-server's, per request
    checked: bool = True  # each answer's status and Location checked (else only counted)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


# --- wrk -----------------------------------------------------------------------------------------


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, paths_file: Path, ips_file: Path, pattern: str, seconds: float,
            threads: int, connections: int, check: bool = True) -> LoadResult:
    """One ``wrk`` run of ``seconds`` with ``rotate.lua``; ``check``: each answer's status and
    ``Location`` checked in Lua (else only counted, 4xx/5xx apart: see ``rotate.lua``)."""
    binary = wrk_path()
    if binary is None:
        raise RuntimeError("wrk is not installed")
    command = [
        binary, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
        "--latency", "--timeout", "5s", "-s", str(LUA_SCRIPT), url,
        "--", str(paths_file), str(ips_file), pattern,
    ]
    env = dict(os.environ, MIRRORBITS_BENCH_COUNT_ONLY="0" if check else "1")
    before = _children_cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                          env=env)
    loadgen_cpu = _children_cpu_seconds() - before
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            data = json.loads(line.removeprefix("BENCH_RESULT "))
            latency = data["latency_ms"]
            return LoadResult(
                data["requests"], data["duration_s"], data["ok_302"], data["other_status"],
                data["bad_location"], data["socket_errors"], latency["p50"], latency["p90"],
                latency["p99"], data["first_bad"],
                ("" if check else "MIRRORBITS_BENCH_COUNT_ONLY=1 ") + _quote(command),
                loadgen_cpu_us=loadgen_cpu / data["requests"] * 1e6 if data["requests"] else None,
                checked=check,
            )
    raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _children_cpu_seconds() -> float:
    """CPU time (user + system) of this process' finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _quote(command: list[str]) -> str:
    return " ".join(part if re.fullmatch(r"[\w@%+=:,./-]+", part) else repr(part)
                    for part in command)


# --- raw sockets ---------------------------------------------------------------------------------


@frozen
class Response:
    status: int
    location: str | None


@define
class _Conn:
    sock: socket.socket
    tag: object = None
    started: float = 0.0
    buffer: bytearray = field(factory=bytearray)


def _request(host: str, path: str, ip: str) -> bytes:
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode()
            + b"\r\nX-Forwarded-For: " + ip.encode() + b"\r\nUser-Agent: " + USER_AGENT
            + b"\r\n\r\n")


def _parse(buffer: bytearray) -> tuple[Response, int, bool] | None:
    """(response, bytes used, server closes) if ``buffer`` holds a whole response."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    location: str | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"location":
            location = value.decode("latin-1")
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.lower() == b"close":
            close = True
    used = end + 4
    if chunked:
        while True:
            line_end = buffer.find(b"\r\n", used)
            if line_end < 0:
                return None
            size = int(bytes(buffer[used:line_end]).split(b";")[0], 16)
            used = line_end + 2 + size + 2
            if len(buffer) < used:
                return None
            if size == 0:
                break
    elif len(buffer) < used + length:
        return None
    else:
        used += length
    return Response(status, location), used, close


def drive(host: str, port: int, connections: int,
          next_request: Callable[[], tuple[bytes, object] | None],
          on_response: Callable[[object, Response, float], None], deadline: float) -> int:
    """Keep ``connections`` keep-alive connections busy until requests or time run out.

    Returns the number of socket errors (a connection lost with a request pending).
    """
    selector = selectors.DefaultSelector()
    errors = 0

    def start(conn: _Conn | None) -> None:
        item = next_request()
        if item is None:
            if conn is not None:
                selector.unregister(conn.sock)
                conn.sock.close()
            return
        if conn is None:
            sock = socket.create_connection((host, port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            selector.register(sock, selectors.EVENT_READ, conn)
        conn.tag = item[1]
        conn.started = time.perf_counter()
        conn.sock.sendall(item[0])

    for _ in range(connections):
        start(None)
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            conn = key.data
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                errors += 1
                selector.unregister(conn.sock)
                conn.sock.close()
                start(None)
                continue
            conn.buffer += data
            parsed = _parse(conn.buffer)
            if parsed is None:
                continue
            response, used, close = parsed
            del conn.buffer[:used]
            on_response(conn.tag, response, time.perf_counter() - conn.started)
            if close:
                selector.unregister(conn.sock)
                conn.sock.close()
                start(None)
            else:
                start(conn)
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    return errors


def _rotation(paths: list[str], ips: list[str], offset: int) -> Iterator[tuple[str, str]]:
    counter = offset
    while True:
        counter += 1
        yield paths[counter % len(paths)], ips[(counter * 7) % len(ips)]


@frozen
class _Part:
    """What one load process saw."""

    latencies: list[float]
    ok: int
    other: int
    bad: int
    errors: int
    seconds: float
    first_bad: str


def _worker(args: tuple[str, int, list[str], list[str], str, float, int, int]) -> _Part:
    host, port, paths, ips, pattern, seconds, connections, index = args
    matcher = re.compile(pattern)
    rotation = _rotation(paths, ips, index * 7919)
    host_header = f"{host}:{port}"
    latencies: list[float] = []
    counts = {"ok": 0, "other": 0, "bad": 0}
    first_bad: list[str] = []

    def next_request() -> tuple[bytes, object]:
        path, ip = next(rotation)
        return _request(host_header, path, ip), None

    def on_response(tag: object, response: Response, elapsed: float) -> None:
        latencies.append(elapsed)
        if response.status != 302:
            counts["other"] += 1
            first_bad.append(f"status {response.status}")
        elif response.location is None or not matcher.search(response.location):
            counts["bad"] += 1
            first_bad.append(f"location {response.location}")
        else:
            counts["ok"] += 1

    started = time.monotonic()
    errors = drive(host, port, connections, next_request, on_response, started + seconds)
    return _Part(latencies, counts["ok"], counts["other"], counts["bad"], errors,
                 time.monotonic() - started, first_bad[0] if first_bad else "")


def run_python(host: str, port: int, paths: list[str], ips: list[str], pattern: str,
               seconds: float, threads: int, connections: int) -> LoadResult:
    """The same measurement as :func:`run_wrk`, with ``threads`` processes of raw sockets."""
    share = [connections // threads + (1 if i < connections % threads else 0)
             for i in range(threads)]
    jobs = [(host, port, paths, ips, pattern, seconds, n, i) for i, n in enumerate(share) if n]
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        parts = pool.map(_worker, jobs)
    latencies = sorted(x for part in parts for x in part.latencies)
    bad = [part.first_bad for part in parts if part.first_bad]

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3

    return LoadResult(
        len(latencies), max(part.seconds for part in parts), sum(p.ok for p in parts),
        sum(p.other for p in parts), sum(p.bad for p in parts), sum(p.errors for p in parts),
        pct(0.50), pct(0.90), pct(0.99), bad[0] if bad else "",
        f"python loadgen: {threads} processes, {connections} keep-alive connections, "
        f"{seconds:g} s, GET http://{host}:{port}<path> with X-Forwarded-For",
    )


@frozen
class VerifyResult:
    checked: int
    wrong: int
    examples: tuple[str, ...]
    seconds: float


def verify_pass(host: str, port: int, requests: list[tuple[str, str]],
                allowed: Callable[[str, Response], bool], connections: int = 16,
                timeout: float = 300.0) -> VerifyResult:
    """Send each ``(path, ip)`` once; count answers for which ``allowed`` is false."""
    pending = iter(requests)
    host_header = f"{host}:{port}"
    wrong: list[str] = []
    checked = 0

    def next_request() -> tuple[bytes, object] | None:
        item = next(pending, None)
        if item is None:
            return None
        return _request(host_header, item[0], item[1]), item

    def on_response(tag: object, response: Response, elapsed: float) -> None:
        nonlocal checked
        checked += 1
        assert isinstance(tag, tuple)
        path, ip = tag
        if not allowed(path, response):
            wrong.append(f"{path} from {ip}: {response.status} {response.location}")

    started = time.monotonic()
    drive(host, port, connections, next_request, on_response, started + timeout)
    return VerifyResult(checked, len(wrong), tuple(wrong[:5]), time.monotonic() - started)
