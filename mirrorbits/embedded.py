"""The embedded configuration: a start without configuration file (``--repository DIR``).

It takes the reference defaults, with a few settings given on the command line instead of a
file (``--listen``, ``--control``, ``--redis-address``), and its own Redis: a private
``redis-server`` under ``--data-dir`` unless ``--redis-address`` names one. ``--demo`` adds
two local mirrors, with their own private Redis (``<data-dir>/demo``), so trying the demo
never leaves demo mirrors in the real setup.

The data directory also keeps the downloads that a stop during a Redis outage could not write
(``StatsSpoolDir``, :data:`~mirrorbits.config.SPOOL_SUBDIRECTORY` beside the Redis they belong
to): the private server's in ``<data-dir>/stats-spool``, the demo's in
``<data-dir>/demo/stats-spool``, those of a ``--redis-address HOST:PORT`` in
``<data-dir>/stats-spool/HOST-PORT``, so that a run on another Redis never writes them into
the wrong one.
"""

from __future__ import annotations

import os

from attrs import frozen

from mirrorbits.addresses import AddressError, parse_listen_address, split_host_port
from mirrorbits.config import SPOOL_SUBDIRECTORY, Config, ConfigError, with_changes
from mirrorbits.embedded_redis import PrivateRedis, plan_private_redis

#: Options that only make sense without a configuration file (each has a key in the file).
EMBEDDED_ONLY = {
    "listen": "ListenAddress",
    "control": "RPCListenAddress",
    "redis-address": "RedisAddress",
    "demo": "",
}
DEMO_SUBDIRECTORY = "demo"


@frozen
class EmbeddedStart:
    """How a start on the embedded configuration finds its data.

    ``private_redis``: the private server (None when ``--redis-address`` was given).
    """

    data_dir: str
    private_redis: PrivateRedis | None
    demo: bool = False

    def describe_redis(self, config: Config) -> str:
        """Which Redis this node uses and where its data lives (one line)."""
        if self.private_redis is not None:
            return self.private_redis.describe()
        return f"{config.redis_address}, database {config.redis_db} (given by --redis-address)"


def embedded_config(repository: str, listen: str | None, control: str | None,
                    redis_address: str | None) -> Config:
    """The embedded configuration serving ``repository``; ConfigError names a bad option."""
    changes: dict[str, str] = {"repository": repository}
    for option, value, key, check in (
            ("--listen", listen, "listen_address", parse_listen_address),
            ("--control", control, "rpc_listen_address", parse_listen_address),
            ("--redis-address", redis_address, "redis_address", split_host_port)):
        if value is None:
            continue
        try:
            check(value)
        except AddressError as err:
            raise ConfigError(f"{option} {value!r} is invalid: {err}") from None
        changes[key] = value
    return with_changes(Config(), **changes)


def refuse_with_config_file(options: dict[str, object], path: str) -> None:
    """ConfigError when an embedded-only option comes with a configuration file."""
    for option, key in EMBEDDED_ONLY.items():
        if options.get(option):
            where = f": set {key} in {path} instead" if key else ""
            raise ConfigError(
                f"--{option} applies to the embedded configuration only (no configuration "
                f"file), and {path} is used{where}")


def plan_embedded(config: Config, data_dir: str, demo: bool,
                  redis_given: bool) -> tuple[Config, EmbeddedStart]:
    """The embedded start's Redis: the given one, or a private server (chosen here).

    Blocking (file system and loopback probes). Raises ConfigError for refused
    combinations and :class:`~mirrorbits.embedded_redis.PrivateRedisError`.
    """
    data_dir = os.path.abspath(data_dir)
    if demo and redis_given:
        raise ConfigError("--demo runs on its own private Redis: drop --redis-address")
    if redis_given:
        host, port = split_host_port(config.redis_address)
        spool = os.path.join(data_dir, SPOOL_SUBDIRECTORY, f"{host or 'localhost'}-{port}")
        return _with_spool(config, spool), EmbeddedStart(data_dir, None, demo)
    private_dir = os.path.join(data_dir, DEMO_SUBDIRECTORY) if demo else data_dir
    private = plan_private_redis(private_dir)
    config = with_changes(config, redis_address=private.address, redis_db=0)
    config = _with_spool(config, os.path.join(private_dir, SPOOL_SUBDIRECTORY))
    return config, EmbeddedStart(data_dir, private, demo)


def _with_spool(config: Config, directory: str) -> Config:
    """``config`` keeping a stop's unwritten downloads in ``directory`` unless it names a
    ``StatsSpoolDir`` of its own."""
    return config if config.stats_spool_dir else with_changes(config, stats_spool_dir=directory)
