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
# The files that take longest (1.5-5 min each in a parallel run), handed out first so that
# none of them starts last and runs on alone; the others follow in collection order.
SLOW_FILES = [
    "tests/integration/test_ctl_habits.py", "tests/integration/test_workers.py",
    "tests/integration/test_process_faults.py", "tests/integration/test_upgrade.py",
    "tests/integration/test_repository_watch.py", "tests/unit/test_selection_fast.py",
    "tests/integration/test_daemon.py", "tests/integration/test_redis_faults.py",
    "tests/integration/test_mirror_scan.py", "tests/integration/test_daemon_redis.py",
    "tests/integration/test_startup_errors.py", "tests/integration/test_metrics.py",
    "tests/integration/test_scan_retry.py", "tests/integration/test_geo_config_reload.py",
]


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on :data:`WORKERS` xdist workers, each file whole on one (:data:`DISTRIBUTION`),
    unless the command line says otherwise: ``-n N`` sets the number of workers, ``--dist``
    the distribution; ``-n 0`` or ``-p no:xdist`` runs serially in this process, and so does
    a run of a single test file (or tests of one file), where workers would only add start-up.

    Runs before xdist's own hook (this conftest is registered later, so its ``tryfirst`` hook
    is called first), which turns ``numprocesses`` into workers."""
    option = config.option
    if not hasattr(option, "numprocesses") or hasattr(config, "workerinput"):
        return  # xdist blocked, or this process is already a worker
    if option.numprocesses is None and not option.tx:
        if option.usepdb or option.collectonly or _one_file(config):
            return
        option.numprocesses = WORKERS
    if option.numprocesses and option.dist == "no":
        option.dist = DISTRIBUTION
        option.loadscopereorder = False  # files in the order pytest_collection_modifyitems gives


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, :data:`SLOW_FILES` first (the workers hand out files in the order
    collected); a serial run keeps pytest's order."""
    if not hasattr(config, "workerinput"):
        return
    rank = {path: index for index, path in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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
