"""Shared fixtures: a real redis-server per test session (per xdist worker), flushed before each
test; and the parallel run's default (:func:`pytest_cmdline_main`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.servers import RedisServer

# The suite waits on real daemons, timers and subprocesses far more than it computes: workers
# overlap those waits. Each test file runs whole on one worker (its module-scoped daemons are
# started once); each worker has its own session fixtures and temporary directory.
WORKERS = 4
DISTRIBUTION = "loadfile"


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on :data:`WORKERS` xdist workers unless the command line says otherwise: ``-n N``
    or ``--dist`` wins, ``-n 0`` or ``-p no:xdist`` runs serially in this process, and so does
    a run of a single test file (or tests of one file), where workers would only add start-up.

    Runs before xdist's own hook (this conftest is registered later, so its ``tryfirst`` hook
    is called first), which turns ``numprocesses`` into workers."""
    option = config.option
    if not hasattr(option, "numprocesses") or hasattr(config, "workerinput"):
        return  # xdist blocked, or this process is already a worker
    if option.numprocesses is not None or option.dist != "no" or getattr(option, "tx", None):
        return
    if option.usepdb or option.collectonly or _one_file(config):
        return
    option.numprocesses = WORKERS
    option.dist = DISTRIBUTION


def _one_file(config: pytest.Config) -> bool:
    """Whether the arguments name tests of a single file (``file.py`` or ``file.py::test``)."""
    paths = {arg.split("::", 1)[0] for arg in config.args}
    return len(paths) == 1 and (config.invocation_params.dir / paths.pop()).is_file()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(workdir=Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A synchronous client on DB 0 of the session's redis-server, emptied first."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    client.flushall()
    yield client
    client.close()
