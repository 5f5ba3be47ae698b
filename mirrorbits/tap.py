"""``twistd mirrorbits``: command-line options and the service tree (wiring only, no I/O)."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from mirrorbits.config import (
    Config,
    ConfigError,
    default_config_path,
    load_config,
    with_repository,
)
from mirrorbits.systemd.activation import ActivationError, take_activated_sockets
from mirrorbits.systemd.notify import ENVIRONMENT as NOTIFY_ENVIRONMENT
from mirrorbits.systemd.notify import Notifier


class Options(usage.Options):
    """Options of ``twistd mirrorbits``; twistd's own handle --pidfile and --logfile."""

    synopsis = "[--config FILE] [--no-monitor] [--debug] [--repository DIR]"
    longdesc = (
        "Run the Mirrorbits download redirector. Without --config, /etc/mirrorbits.conf is "
        "read when it exists; otherwise --repository DIR starts on the embedded default "
        "configuration (HTTP on :8080, control on localhost:3390, Redis on 127.0.0.1:6379 "
        "or a private redis-server kept under --data-dir)."
    )
    optParameters = [
        ["config", "c", None, "Path of the YAML configuration file."],
        ["repository", "r", None, "Serve this directory (overrides the configured Repository)."],
        ["data-dir", None, "mirrorbits-data", "Where the private redis-server keeps its data."],
    ]
    optFlags = [
        ["no-monitor", None, "Do not scan, health-check or join the cluster on this node."],
        ["debug", None, "Log debug messages."],
    ]


def load_startup_config(options: usage.Options) -> tuple[Config, str | None, list[str]]:
    """The configuration to start with, its path (None for the embedded default), warnings."""
    path = options["config"] or default_config_path()
    repository = options["repository"]
    if path is None:
        if repository is None:
            raise ConfigError(
                "Configuration could not be found. Use --config <path>, or --repository <dir> "
                "to serve a directory on the embedded default configuration."
            )
        return with_repository(Config(), repository), None, []
    config, warnings = load_config(path)
    if repository is not None:
        config = with_repository(config, repository)
    return config, path, warnings


def makeService(options: usage.Options, reactor: Any = None) -> IService:
    """Build the daemon's service tree; a bad configuration exits with one clear line."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    try:
        config, path, warnings = load_startup_config(options)
    except ConfigError as err:  # the warnings first: a misspelt key often explains the error
        explained = "".join(f"mirrorbits: warning: {warning}\n" for warning in err.warnings)
        raise SystemExit(f"{explained}mirrorbits: {err}") from None
    # Before mirrorbits.daemon is imported: twisted.internet.endpoints, which it imports,
    # takes LISTEN_PID and LISTEN_FDS out of the environment.
    try:
        activated = take_activated_sockets(os.environ, os.getpid())
    except ActivationError as err:
        raise SystemExit(f"mirrorbits: {err}") from None
    notifier = Notifier.from_value(os.environ.pop(NOTIFY_ENVIRONMENT, None))
    from mirrorbits.daemon import build_daemon
    from mirrorbits.listen import ListenAddressError

    daemon = build_daemon(
        config=config,
        config_path=path,
        warnings=warnings,
        reactor=reactor,
        monitor=not options["no-monitor"],
        debug=bool(options["debug"]),
        data_dir=os.path.abspath(options["data-dir"]),
        embedded=path is None,
        argv=list(sys.argv),
        activated=activated,
        notifier=notifier,
    )
    try:
        daemon.bind_listeners()
    except ListenAddressError as err:
        raise SystemExit(f"mirrorbits: {err}") from None
    return daemon
