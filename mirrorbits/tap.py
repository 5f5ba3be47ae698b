"""``twistd mirrorbits``: command-line options and the service tree (wiring only, no I/O)."""

from __future__ import annotations

import os
import sys

from twisted.application.service import IService
from twisted.python import usage

from mirrorbits.config import (
    Config,
    ConfigError,
    UnreadableConfig,
    default_config_path,
    load_config,
    repository_option_warnings,
)
from mirrorbits.embedded import (
    EmbeddedStart,
    embedded_config,
    plan_embedded,
    refuse_with_config_file,
)
from mirrorbits.embedded_redis import PrivateRedisError
from mirrorbits.reactors import IDaemonReactor, default_reactor
from mirrorbits.systemd.activation import ActivationError, take_activated_sockets
from mirrorbits.systemd.notify import ENVIRONMENT as NOTIFY_ENVIRONMENT
from mirrorbits.systemd.notify import Notifier


class Options(usage.Options):
    """Options of ``twistd mirrorbits``; twistd's own handle --pidfile and --logfile."""

    synopsis = "[--config FILE] [--no-monitor] [--debug] [--repository DIR [--demo]]"
    longdesc = (
        "Run the Mirrorbits download redirector. Without --config, /etc/mirrorbits.conf is "
        "read when it exists; otherwise --repository DIR starts on the embedded configuration: "
        "HTTP on :8080 (--listen), the control channel on localhost:3390 (--control), and a "
        "private redis-server keeping its data under --data-dir (or the Redis given by "
        "--redis-address). --demo also runs two local mirrors of DIR on 127.0.0.2 and "
        "127.0.0.3, so that downloads are redirected at once."
    )
    optParameters = [
        ["config", "c", None, "Path of the YAML configuration file."],
        ["repository", "r", None, "Serve this directory (overrides the configured Repository)."],
        ["data-dir", None, "mirrorbits-data",
         "Embedded configuration: where the private redis-server keeps its data."],
        ["listen", None, None, "Embedded configuration: the HTTP address (default :8080)."],
        ["control", None, None,
         "Embedded configuration: the control channel's address (default localhost:3390)."],
        ["redis-address", None, None,
         "Embedded configuration: use the Redis at HOST:PORT (database 0) instead of a "
         "private redis-server."],
    ]
    optFlags = [
        ["no-monitor", None, "Do not scan, health-check or join the cluster on this node."],
        ["debug", None, "Log debug messages."],
        ["demo", None, "Embedded configuration: also run two local mirrors of the repository."],
    ]

    def opt_version(self) -> None:
        """Display mirrorbits' and Twisted's versions and exit."""
        import twisted
        from mirrorbits import version_string

        print(f"mirrorbits {version_string()} (Twisted {twisted.__version__})")
        sys.exit(0)


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
        config = embedded_config(repository, options["listen"], options["control"],
                                 options["redis-address"])
        return config, None, repository_option_warnings(config)
    refuse_with_config_file(dict(options), path)
    try:
        config, warnings = load_config(path, repository=repository)
    except UnreadableConfig as err:  # at start only: a reload cannot take another file
        raise ConfigError(f"{err} (use --config <path>)") from None
    return config, path, warnings


def makeService(options: usage.Options, reactor: IDaemonReactor | None = None) -> IService:
    """Build the daemon's service tree; a bad configuration exits with one clear line."""
    if reactor is None:
        reactor = default_reactor()
    embedded: EmbeddedStart | None = None
    try:
        config, path, warnings = load_startup_config(options)
        if options["demo"] and options["no-monitor"]:
            raise ConfigError("--demo needs the scans and health checks: drop --no-monitor")
        if path is None:
            config, embedded = plan_embedded(config, options["data-dir"], bool(options["demo"]),
                                             options["redis-address"] is not None)
    except ConfigError as err:  # the warnings first: a misspelt key often explains the error
        explained = "".join(f"mirrorbits: warning: {warning}\n" for warning in err.warnings)
        raise SystemExit(f"{explained}mirrorbits: {err}") from None
    except PrivateRedisError as err:
        raise SystemExit(f"mirrorbits: {err}") from None
    if not _log_reaches_the_terminal(options):  # else the log shows them right away
        sys.stderr.write("".join(f"mirrorbits: warning: {warning}\n" for warning in warnings))
    # Before mirrorbits.daemon is imported: twisted.internet.endpoints, which it imports,
    # takes LISTEN_PID and LISTEN_FDS out of the environment.
    try:
        activated = take_activated_sockets(os.environ, os.getpid())
    except ActivationError as err:
        raise SystemExit(f"mirrorbits: {err}") from None
    notifier = Notifier.from_value(os.environ.pop(NOTIFY_ENVIRONMENT, None))
    from mirrorbits.control.tls import TLSSetupError
    from mirrorbits.daemon import build_daemon
    from mirrorbits.listen import ListenAddressError

    try:
        daemon = build_daemon(
            config=config,
            config_path=path,
            warnings=warnings,
            reactor=reactor,
            monitor=not options["no-monitor"],
            debug=bool(options["debug"]),
            embedded=embedded,
            argv=list(sys.argv),
            activated=activated,
            notifier=notifier,
            repository=options["repository"],
        )
        daemon.bind_listeners()
    except (ListenAddressError, TLSSetupError) as err:
        raise SystemExit(f"mirrorbits: {err}") from None
    geo_warning = daemon.geo.missing_warning()
    if geo_warning is not None and not _log_reaches_the_terminal(options):
        sys.stderr.write(f"mirrorbits: warning: {geo_warning}\n")  # as logged
    return daemon


def _log_reaches_the_terminal(options: usage.Options) -> bool:
    """Whether twistd logs to the terminal it was started from (``-n`` without
    ``--logfile``), so that the log's first lines are seen there. A background start (or
    ``--logfile``) writes them to a file only: its warnings go to stderr too, like its errors.
    Not started by twistd (a ``.tac``, tests): no parent options, nothing more is written."""
    twistd = getattr(options, "parent", None)
    if twistd is None:
        return True
    return bool(twistd.get("nodaemon")) and twistd.get("logfile") in (None, "", "-")
