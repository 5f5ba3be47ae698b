"""Real servers for the integration tests: each started on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Return once ``host:port`` accepts connections, or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.02)


@attrs.define
class RedisServer:
    """A private ``redis-server`` without persistence."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    password: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        if not self.port:
            self.port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary, "--bind", self.host, "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        wait_for_port(self.host, self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def env_without_proxies() -> dict[str, str]:
    """The test process' environment, minus anything that could send traffic elsewhere."""
    env = dict(os.environ)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    return env


@attrs.define
class StaticHTTPServer:
    """``python -m http.server`` serving ``root`` on ``host`` (a mirror for redirect tests)."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", self.host, "--directory",
             str(self.root), str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_without_proxies())
        wait_for_port(self.host, self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
