"""What makes sense in a configuration (spec §2): every message names the key, the value given
and what is allowed or what the value will do.

:func:`value_errors` and :func:`value_warnings` are pure: they take a parsed
:class:`~mirrorbits.config.Config` and return findings (:class:`Finding`), each a message
and the key it is about (the reference's checks first, with its wording as the start of the
message). :func:`file_system_warnings` looks at the directories the configuration names, at
load and at each reload.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from attrs import frozen

from mirrorbits.addresses import AddressError, parse_listen_address, split_host_port
from mirrorbits.hostpatterns import host_pattern_problem
from mirrorbits.scan.rsync_options import option_problem
from mirrorbits.selection.generations import pattern_problem

if TYPE_CHECKING:
    from mirrorbits.config import Config
    from mirrorbits.model import Fallback

OUTPUT_MODES = ("auto", "json", "redirect")
CONTINENT_CODES = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")  # GeoIP's continents
REDIS_DEFAULT_DATABASES = 16  # redis.conf ``databases``
LONGEST_SHOWN_VALUE = 80
TEMPLATE_FILES = ("base.xhtml", "mirrorlist.xhtml", "mirrorstats.xhtml")
# Two-letter codes in common use that no client is located in.
NOT_GEOIP_COUNTRIES = {
    "UK": "the United Kingdom is GB",
    "EL": "Greece is GR",
}
_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")
_LOCAL_HOSTS = ("localhost", "localhost.")


def shown(value: object) -> str:
    """A value as a message shows it: numbers as written, text quoted on one line."""
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, str):
        if len(value) <= LONGEST_SHOWN_VALUE:
            return repr(value)
        return repr(value[: LONGEST_SHOWN_VALUE - 3]) + "..."
    return str(value)


KeyPath = tuple[str | int, ...]
"""Where a value is in the file: key names, and list positions from 0 (``("Fallbacks", 1,
"URL")``); the parser knows the line of each."""


@frozen
class Finding:
    """One message about the configuration, and the key it is about (its line is added by
    :mod:`mirrorbits.config`, which knows the file)."""

    key: KeyPath
    text: str

    def __str__(self) -> str:
        return self.text


# --- errors: values that cannot be used ---------------------------------------------------


def value_errors(config: Config) -> list[Finding]:
    """Every unusable value of *config*, one message each; the first is the one reported."""
    errors: list[Finding] = []

    def add(key: KeyPath, text: str) -> None:
        errors.append(Finding(key, text))

    if not config.weight_distribution_range > 0:  # also refuses NaN
        add(("WeightDistributionRange",),
            f"WeightDistributionRange must be > 0, not {shown(config.weight_distribution_range)}")
    if config.output_mode not in OUTPUT_MODES:
        add(("OutputMode",),
            "Config: outputMode can only be set to 'auto', 'json' or 'redirect', not "
            + shown(config.output_mode))
    if not config.repository:
        add(("Repository",), "Path to local repository not configured (see mirrorbits.conf)")
    for number, rule in enumerate(config.allow_outdated_files):
        if rule.prefix and not rule.prefix.startswith("/"):
            add(("AllowOutdatedFiles", number, "Prefix"),
                f"AllowOutdatedFiles.Prefix must start with '/', not {shown(rule.prefix)}")
        if rule.minutes < 0:
            add(("AllowOutdatedFiles", number, "Minutes"),
                f"AllowOutdatedFiles.Minutes must be >= 0, not {rule.minutes}")
    for number, pattern in enumerate(config.generation_indexes):
        problem = pattern_problem(pattern)
        if problem is not None:
            add(("GenerationIndexes", number), f"GenerationIndexes: {shown(pattern)} {problem}")
    if config.max_link_headers < 0:
        add(("MaxLinkHeaders",), f"MaxLinkHeaders must be >= 0, not {config.max_link_headers}")
    if config.concurrent_sync < 1:
        add(("ConcurrentSync",), f"ConcurrentSync must be >= 1 (mirrors scanned at the same time), "
            f"not {config.concurrent_sync}")
    if config.max_scan_entries < 1:
        add(("MaxScanEntries",), f"MaxScanEntries must be >= 1 (entries of one mirror listing), "
            f"not {config.max_scan_entries}")
    if config.redis_db < 0:
        add(("RedisDB",), f"RedisDB must be >= 0, not {config.redis_db}")
    for key, minutes in (("ScanInterval", config.scan_interval),
                         ("CheckInterval", config.check_interval)):
        if minutes < 0:
            add((key,), f"{key} must be a number of minutes >= 0, not {minutes}")
    if config.liveness_interval < 0:
        add(("LivenessInterval",),
            f"LivenessInterval must be a number of seconds >= 0 (0: no liveness probes), "
            f"not {config.liveness_interval}")
    if config.verify_interval < 0:
        add(("VerifyInterval",),
            f"VerifyInterval must be a number of seconds >= 0 (0: no file verification), "
            f"not {config.verify_interval}")
    if config.workers is not None and config.workers < 1:
        add(("Workers",),
            f"Workers must be a number of HTTP processes >= 1 (1: this process serves "
            f"alone), not {config.workers}")
    if config.cache_files < 1:
        add(("CacheFiles",),
            f"CacheFiles must be a number of files >= 1 (held in each HTTP process' cache), "
            f"not {config.cache_files}")
    errors += _address_errors(config)
    errors += _control_tls_errors(config)
    if not 0 < config.rpc_idle_timeout < math.inf:
        add(("RPCIdleTimeout",), f"RPCIdleTimeout must be a number of seconds > 0, "
            f"not {shown(config.rpc_idle_timeout)}")
    if not 0 < config.http_read_timeout < math.inf:  # also refuses NaN
        add(("HTTPReadTimeout",), f"HTTPReadTimeout must be a number of seconds > 0, "
            f"not {shown(config.http_read_timeout)}")
    for number, fallback in enumerate(config.fallbacks):
        errors += _fallback_errors(number, fallback)
    errors += _http_scan_errors(config)
    for number, text in enumerate(config.trusted_proxies):
        if _network(text) is None:
            add(("TrustedProxies", number),
                f"TrustedProxies: {shown(text)} is not an IP address or network (CIDR)")
    for number, host in enumerate(config.allow_redirect_hosts):
        problem = host_pattern_problem(host)
        if problem is not None:
            add(("AllowRedirectHosts", number), f"AllowRedirectHosts: {shown(host)} {problem}")
    for key, count in (("Days", config.stats_retention.days),
                       ("Months", config.stats_retention.months)):
        if count < 0:
            add(("StatsRetention", key),
                f"StatsRetention.{key} must be >= 0 (0 keeps the counters forever), not {count}")
    for name, options in config.rsync_options:
        for number, option in enumerate(options):
            problem = option_problem(option)
            if problem:
                add(("RsyncOptions", name, number),
                    f"RsyncOptions.{name}: {shown(option)} is refused: {problem}")
    if config.mirmon_export_file.endswith("/"):
        add(("MirmonExportFile",),
            f"MirmonExportFile {shown(config.mirmon_export_file)} names a directory: "
            "it must name the file to write")
    return errors


def _http_scan_errors(config: Config) -> list[Finding]:
    scan = config.http_scan
    errors: list[Finding] = []

    def add(name: str, text: str) -> None:
        errors.append(Finding(("HTTPScan", name), text))

    if not 1 <= scan.concurrency <= 64:
        add("Concurrency", f"HTTPScan.Concurrency must be from 1 to 64 (requests at a time to one "
                      f"mirror), not {scan.concurrency}")
    if not 0 <= scan.delay <= 3600:  # also refuses NaN
        add("Delay", f"HTTPScan.Delay must be a number of seconds from 0 to 3600, "
                      f"not {shown(scan.delay)}")
    if not 0 < scan.timeout <= 3600:
        add("Timeout", f"HTTPScan.Timeout must be a number of seconds > 0 and <= 3600, "
                      f"not {shown(scan.timeout)}")
    if scan.max_head_requests < 0:
        add("MaxHeadRequests",
            f"HTTPScan.MaxHeadRequests must be >= 0, not {scan.max_head_requests}")
    return errors


def _control_tls_errors(config: Config) -> list[Finding]:
    """TLS of the control channel: a certificate needs the CA of the clients, and TCP."""
    if not config.rpc_tls_certificate:
        given = [key for key, value in (("RPCTLSKey", config.rpc_tls_key),
                                        ("RPCTLSClientCA", config.rpc_tls_client_ca)) if value]
        if given:
            return [Finding((given[0],), f"{' and '.join(given)} set without "
                            "RPCTLSCertificate: set the daemon's certificate too, or remove them")]
        return []
    if not config.rpc_tls_client_ca:
        return [Finding(("RPCTLSCertificate",), "RPCTLSCertificate needs RPCTLSClientCA: the CA "
                        "(PEM file) whose certificates the clients must present")]
    if config.rpc_listen_address.startswith("unix:"):
        return [Finding(("RPCTLSCertificate",), "RPCTLSCertificate applies to a TCP "
                        "RPCListenAddress, not to the UNIX socket "
                        f"{shown(config.rpc_listen_address)} (its file mode protects it)")]
    return []


def _address_errors(config: Config) -> list[Finding]:
    checks: list[tuple[KeyPath, str, Callable[[str], object]]] = [
        (("ListenAddress",), config.listen_address, parse_listen_address),
        (("RPCListenAddress",), config.rpc_listen_address, parse_listen_address),
        (("RedisAddress",), config.redis_address, split_host_port),
    ]
    if config.metrics_listen_address:
        checks.append((("MetricsListenAddress",), config.metrics_listen_address,
                       parse_listen_address))
    errors: list[Finding] = []
    for number, host in enumerate(config.redis_sentinels):
        if not host:
            errors.append(Finding(("RedisSentinels", number, "Host"),
                                  f"RedisSentinels.Host must not be empty (entry {number + 1})"))
        else:
            checks.append((("RedisSentinels", number, "Host"), host, split_host_port))
    for key, value, parse in checks:
        try:
            parse(value)
        except AddressError as err:
            name = ".".join(part for part in key if isinstance(part, str))
            errors.append(Finding(key, f"{name} {shown(value)} is invalid: {err}"))
    return errors


def _fallback_errors(number: int, fallback: Fallback) -> list[Finding]:
    """The problems of the fallback at *number* (from 0) in the list."""
    url, country, continent = fallback.url, fallback.country_code, fallback.continent_code
    errors: list[Finding] = []

    def add(name: str, text: str) -> None:
        errors.append(Finding(("Fallbacks", number, name), text))

    if not url:
        add("URL", f"Fallbacks.URL must not be empty (entry {number + 1})")
    else:
        problem = _fallback_url_problem(url)
        if problem:
            add("URL", f"Fallbacks.URL {shown(url)} is invalid: {problem}")
    if not all(_COUNTRY_CODE.fullmatch(code) for code in country.split()):
        add("CountryCode", f"Fallbacks.CountryCode {shown(country)} is invalid: a country code is "
                      "two letters (ISO 3166-1, e.g. FR), several are separated by spaces")
    if continent and continent.upper() not in CONTINENT_CODES:
        add("ContinentCode",
            f"Fallbacks.ContinentCode {shown(continent)} is invalid: it must be one of "
                      + ", ".join(CONTINENT_CODES))
    return errors


def _fallback_url_problem(url: str) -> str:
    """Why *url* cannot be a fallback's URL ("" if it can)."""
    scheme, sep, _ = url.partition("://")
    if sep and scheme not in ("http", "https"):
        return "it must start with http:// or https://, or have no scheme (then it serves both)"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):  # a space is encoded
        return "it contains a control character (a tab, a line break...)"
    try:
        parts = urlsplit(url if sep else "http://" + url)
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError as err:
        return str(err)
    if not parts.hostname:
        return "it names no host (write host/path, http://host/path or https://host/path)"
    if any(char.isspace() for char in parts.hostname):
        return f"its host {parts.hostname!r} has a space (one in the path is fine)"
    return ""


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


# --- warnings: values that work, perhaps not as meant -------------------------------------


def value_warnings(config: Config) -> list[Finding]:
    """What *config* will do that its author may not expect, one message each."""
    warnings: list[Finding] = []

    def add(key: KeyPath, text: str) -> None:
        warnings.append(Finding(key, text))

    if config.same_download_interval < 0:
        add(("SameDownloadInterval",),
            f"SameDownloadInterval: {config.same_download_interval} is taken as 0: every "
            "request counts as a download, repeated Range requests included")
    if config.redis_db >= REDIS_DEFAULT_DATABASES:
        add(("RedisDB",),
            f"RedisDB: {config.redis_db} is above {REDIS_DEFAULT_DATABASES - 1}: a Redis server "
            f"has {REDIS_DEFAULT_DATABASES} databases unless its 'databases' setting is raised, "
            f"and refuses SELECT {config.redis_db} otherwise")
    if config.redis_sentinels and not config.redis_sentinel_master_name:
        add(("RedisSentinels",),
            "RedisSentinels are not used without RedisSentinelMasterName: Redis is reached at "
            f"RedisAddress {shown(config.redis_address)}")
    if config.redis_sentinel_master_name and not config.redis_sentinels:
        add(("RedisSentinelMasterName",),
            f"RedisSentinelMasterName {shown(config.redis_sentinel_master_name)} is not used "
            "without RedisSentinels: Redis is reached at RedisAddress "
            + shown(config.redis_address))
    if config.scan_interval == 0:
        add(("ScanInterval",),
            "ScanInterval: 0 rescans every mirror as soon as its previous scan ends "
            "(ConcurrentSync at a time); it is a number of minutes, 30 by default")
    if config.check_interval == 0:
        add(("CheckInterval",),
            "CheckInterval: 0 health-checks every mirror every second; it is a number of "
            "minutes, 1 by default")
    if config.repository_scan_interval < 0:
        add(("RepositoryScanInterval",),
            f"RepositoryScanInterval: {config.repository_scan_interval} is taken as 0: the "
            "local repository is scanned only on request (mirrorbits-ctl refresh)")
    hashes = config.hashes
    if not (hashes.sha1 or hashes.sha256 or hashes.md5):
        add(("Hashes",),
            "Hashes: SHA1, SHA256 and MD5 are all off: no checksum is computed, so ?md5, ?sha1 "
            "and ?sha256 answer 404 and the mirror list and JSON answers show none")
    if 0 < config.weight_distribution_range < 1:
        add(("WeightDistributionRange",),
            f"WeightDistributionRange: {shown(config.weight_distribution_range)} is below 1: not "
            "even the closest mirror is within the range, so no mirror gets the nearby bonus "
            "(1.5 by default)")
    warnings += _shadowed_rules([rule.prefix for rule in config.allow_outdated_files])
    for number, fallback in enumerate(config.fallbacks):
        for code in fallback.country_code.upper().split():
            if code in NOT_GEOIP_COUNTRIES:
                add(("Fallbacks", number, "CountryCode"),
                    f"Fallbacks.CountryCode {shown(code)} is not a country code GeoIP gives: "
                    f"{NOT_GEOIP_COUNTRIES[code]}")
    for number, text in enumerate(config.trusted_proxies):
        network = _network(text)
        if network is not None and "/" in text and not _exact(text):
            add(("TrustedProxies", number),
                f"TrustedProxies: {shown(text)} has host bits set: taken as {network}")
    if not config.rpc_password and _reachable_from_others(config.rpc_listen_address):
        add(("RPCListenAddress",), f"RPCListenAddress {shown(config.rpc_listen_address)} "
            "accepts connections from other hosts and RPCPassword is empty: anyone who reaches "
            "it can control the daemon")
    elif not config.rpc_tls_certificate and _reachable_from_others(config.rpc_listen_address):
        add(("RPCListenAddress",), f"RPCListenAddress {shown(config.rpc_listen_address)} "
            "accepts connections from other hosts without TLS: the password crosses the network "
            "in clear (set RPCTLSCertificate, RPCTLSKey and RPCTLSClientCA, or listen on loopback)")
    return warnings


def _shadowed_rules(prefixes: list[str]) -> list[Finding]:
    """Rules no path reaches: the first rule whose prefix matches a path is the one used."""
    warnings: list[Finding] = []
    for later, prefix in enumerate(prefixes):
        earlier = next((p for p in prefixes[:later] if prefix.startswith(p)), None)
        if earlier is not None:
            warnings.append(Finding(
                ("AllowOutdatedFiles", later, "Prefix"),
                f"AllowOutdatedFiles: the rule for {shown(prefix)} never applies: "
                f"the earlier rule for {shown(earlier)} matches first"))
    return warnings


def _exact(text: str) -> bool:
    """Whether the network *text* has no host bits set."""
    try:
        ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        return False
    return True


def _reachable_from_others(address: str) -> bool:
    """Whether a listener on *address* takes connections from other hosts (a guess for names)."""
    try:
        listen = parse_listen_address(address)
    except AddressError:
        return False
    if listen.path or listen.host.lower() in _LOCAL_HOSTS:
        return False
    try:
        return not ipaddress.ip_address(listen.host).is_loopback
    except ValueError:
        return True  # all interfaces (empty host), or a name of this host


# --- the file system ----------------------------------------------------------------------


def file_system_warnings(config: Config) -> list[Finding]:
    """The directories *config* names that are missing or unusable right now.

    Warnings, not errors: a repository may be mounted, a log directory created, after the
    daemon starts. Not ``GeoipDatabasePath``: :class:`~mirrorbits.geo.GeoIP` says what it
    cannot load, with why and what follows, once at start and once per change.
    """
    warnings: list[Finding] = []
    repository = directory_problem(config.repository, os.R_OK | os.X_OK)
    if repository:
        warnings.append(Finding(("Repository",), f"Repository {shown(config.repository)} "
                                f"{repository}: nothing can be served or scanned from it "
                                "until it can be read"))
    if config.log_dir:
        problem = log_dir_problem(config.log_dir)
        if problem:
            warnings.append(Finding(("LogDir",), f"LogDir {shown(config.log_dir)} {problem}: "
                                    "no download log is written until it can be"))
    if config.stats_spool_dir:
        problem = spool_dir_problem(config.stats_spool_dir)
        if problem:
            warnings.append(Finding(("StatsSpoolDir",),
                                    f"StatsSpoolDir {shown(config.stats_spool_dir)} {problem}: "
                                    "downloads counted during a Redis outage are lost if the "
                                    "daemon stops before Redis is back"))
    if config.mirmon_export_file:
        problem = export_dir_problem(config.mirmon_export_file)
        if problem:
            warnings.append(Finding(("MirmonExportFile",),
                                    f"MirmonExportFile {shown(config.mirmon_export_file)}: "
                                    f"its directory {problem}: the file is not written until "
                                    "it can be"))
    if config.templates:
        problem = directory_problem(config.templates, os.R_OK | os.X_OK)
        if not problem and not any(
                os.path.isfile(os.path.join(config.templates, name)) for name in TEMPLATE_FILES):
            problem = "holds none of " + ", ".join(TEMPLATE_FILES)
        if problem:
            warnings.append(Finding(("Templates",), f"Templates {shown(config.templates)} "
                                    f"{problem}: the shipped templates are used"))
    return warnings


def log_dir_problem(log_dir: str) -> str:
    """What keeps ``downloads.log`` from being written in *log_dir* ("" if nothing): said
    by the configuration check, so the download log does not say it again."""
    return directory_problem(log_dir, os.W_OK | os.X_OK)


def spool_dir_problem(path: str) -> str:
    """What keeps the statistics from being kept in *path* at stop ("" if nothing); a
    missing directory is made then, so only its closest existing parent must be writable."""
    if os.path.lexists(path):
        return directory_problem(path, os.R_OK | os.W_OK | os.X_OK)
    parent = os.path.abspath(path)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    problem = directory_problem(parent, os.W_OK | os.X_OK)
    return f"cannot be made ({shown(parent)} {problem})" if problem else ""


def export_dir_problem(path: str) -> str:
    """What keeps the ``MirmonExportFile`` *path* from being written in its directory ("" if
    nothing): said by the configuration check, so the export does not say it again."""
    return directory_problem(os.path.dirname(os.path.abspath(path)), os.W_OK | os.X_OK)


def directory_problem(path: str, access: int) -> str:
    """What is wrong with *path* as a directory used with *access* ("" if nothing)."""
    if not os.path.exists(path):
        if f"{os.sep}~{os.sep}" in path or path.endswith(f"{os.sep}~"):
            return "does not exist (a ~ is not expanded: write the whole path)"
        return "does not exist"
    if not os.path.isdir(path):
        return "is not a directory"
    if access and not os.access(path, access):
        return "is not " + ("writable" if access & os.W_OK else "readable") + " by this process"
    return ""
