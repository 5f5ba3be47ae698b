"""The daemon's YAML configuration (spec §2): parsed, normalised and validated.

Pure apart from :func:`load_config` and :func:`default_config_path`, which look at the
file system. Any problem is a :class:`ConfigError` (never an exit), so a failed reload can
keep the previous configuration.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import attrs
import yaml
from attrs import define, field, frozen
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mirrorbits.config_example import EXAMPLE_CONFIG as EXAMPLE_CONFIG
from mirrorbits.configcheck import (
    Finding,
    KeyPath,
    file_system_warnings,
    shown,
    value_errors,
    value_warnings,
)
from mirrorbits.model import Fallback, OutdatedRule
from mirrorbits.scan.bounds import DEFAULT_MAX_ENTRIES
from mirrorbits.scan.removals import DEFAULT_MAX_REMOVE, RemovalLimit, parse_removal_limit

DEFAULT_CONFIG_PATH = "/etc/mirrorbits.conf"
#: Set by systemd to the unit's ``StateDirectory`` (several: separated by ``:``).
STATE_DIRECTORY_ENV = "STATE_DIRECTORY"
#: ``StatsSpoolDir`` when not set: this folder of the ``StateDirectory`` (or, without a
#: configuration file, of the data directory: :mod:`mirrorbits.embedded`).
SPOOL_SUBDIRECTORY = "stats-spool"
NO_CONFIG_MESSAGE = "Configuration could not be found.\n\tUse --config <path>"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
DEFAULT_HTTP_READ_TIMEOUT = 10.0  # seconds, the reference's (built into its HTTP server)
DEFAULT_CACHE_FILES = 200_000  # files held by each HTTP process' cache (docs/performance.md)
INT_RANGE = (-(2**63), 2**63 - 1)  # the reference's ints
SUGGESTION_CUTOFF = 0.7  # difflib similarity of an unknown key to the known one it suggests


class ConfigError(Exception):
    """An unusable configuration; ``str(err)`` is a one-line message for the operator.

    ``warnings``: those found before the error (a misspelt key often explains it).
    """

    def __init__(self, message: str, warnings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.warnings: list[str] = list(warnings)


class UnreadableConfig(ConfigError):
    """The configuration file cannot be read (missing, a directory, no permission...)."""


@frozen
class Hashes:
    """Which checksums the local repository scan computes."""

    sha1: bool = False
    sha256: bool = True
    md5: bool = False


@frozen
class StatsRetention:
    """How long daily and monthly download counters are kept (0: forever)."""

    days: int = 0
    months: int = 0


@frozen
class HttpScan:
    """``HTTPScan``: how mirrors without rsync or FTP are scanned through their index pages:
    requests at a time, seconds between two request starts, seconds per request, ``HEAD``
    requests per scan (for sizes the pages round)."""

    concurrency: int = 4
    delay: float = 0.0
    timeout: float = 30.0
    max_head_requests: int = 10_000


@frozen
class Config:
    """Every setting of the file (snake_case of the YAML key), with the reference defaults."""

    repository: str = ""
    templates: str = ""
    local_js_path: str = ""
    output_mode: str = "auto"
    listen_address: str = ":8080"
    gzip: bool = False
    allow_http_to_https_redirects: bool = True
    same_download_interval: int = 600
    redis_address: str = "127.0.0.1:6379"
    redis_password: str = ""
    redis_db: int = 0
    redis_sentinel_master_name: str = ""
    redis_sentinels: tuple[str, ...] = ()
    log_dir: str = ""
    stats_spool_dir: str = ""  # where a stop during a Redis outage keeps its counters
    trace_file_location: str = ""
    geoip_database_path: str = "/usr/share/GeoIP/"
    concurrent_sync: int = 5
    scan_interval: int = 30
    check_interval: int = 1
    liveness_interval: int = 3
    verify_interval: int = 2
    repository_scan_interval: int = 5
    watch_repository: bool = True
    # ours: indexed files one scan of the daemon may remove (mirrorbits.scan.removals)
    repository_scan_max_remove: RemovalLimit = DEFAULT_MAX_REMOVE
    max_link_headers: int = 10
    fix_timezone_offsets: bool = False
    hashes: Hashes = field(factory=Hashes)
    disallow_redirects: bool = False
    allow_redirect_hosts: tuple[str, ...] = ()
    max_scan_entries: int = DEFAULT_MAX_ENTRIES
    weight_distribution_range: float = 1.5
    disable_on_missing_file: bool = False
    allow_outdated_files: tuple[OutdatedRule, ...] = ()
    generation_indexes: tuple[str, ...] = ()  # ours: repository generations; empty: off
    fallbacks: tuple[Fallback, ...] = ()
    rpc_listen_address: str = "localhost:3390"
    metrics_listen_address: str = ""  # empty: no metrics listener
    rpc_password: str = ""
    rpc_tls_certificate: str = ""
    rpc_tls_key: str = ""
    rpc_tls_client_ca: str = ""
    rpc_idle_timeout: float = 300.0  # ours: seconds an authenticated control connection idles
    trusted_proxies: tuple[str, ...] = ()
    http_read_timeout: float = DEFAULT_HTTP_READ_TIMEOUT
    # ours (not in the reference)
    stats_retention: StatsRetention = field(factory=StatsRetention)
    rsync_options: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (mirror name or "*", options)
    mirmon_export_file: str = ""
    http_scan: HttpScan = field(factory=HttpScan)
    workers: int | None = None  # HTTP worker processes; None: one per core
    cache_files: int = DEFAULT_CACHE_FILES  # files the request cache holds (per process)


def default_config_path() -> str | None:
    """``/etc/mirrorbits.conf`` if it exists, else ``None``."""
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None


def load_config(path: str, base: str | None = None, repository: str | None = None,
                environ: Mapping[str, str] = os.environ) -> tuple[Config, list[str]]:
    """Read, parse and validate the file at *path*; returns the config and warnings.

    *base*: the directory relative paths of the file are taken from (the current one by
    default; the daemon's start directory on reload, after twistd moved to its --rundir).
    *repository*: the ``--repository`` option, which replaces the file's ``Repository``
    (what the file says of its own then does not matter: the option's directory is checked).
    *environ*: a ``STATE_DIRECTORY`` there (systemd's ``StateDirectory=``) is where the
    statistics are kept at a stop when the file does not set ``StatsSpoolDir``
    (:func:`state_spool_dir`)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        reason = err.strerror or str(err)
        raise UnreadableConfig(f"Configuration could not be read from {path}: {reason}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"Configuration file {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"invalid UTF-8 at byte {err.start} in {path}") from None
    config, warnings, parse = _parse_config(text, path, base, repository,
                                            state_spool_dir(environ))
    if repository is None:
        return config, warnings + [parse.place(found) for found in file_system_warnings(config)]
    return config, warnings + repository_option_warnings(config) + [
        parse.place(found) for found in file_system_warnings(config)
        if found.key != ("Repository",)]


def repository_option_warnings(config: Config) -> list[str]:
    """A ``--repository`` directory that is missing or unreadable (a typo, most often), said
    like a file's ``Repository``."""
    return [f"{found} (--repository)" for found in file_system_warnings(config)
            if found.key == ("Repository",)]


def parse_config(text: str, source: str = "<string>") -> tuple[Config, list[str]]:
    """Parse and validate configuration *text*; *source* names it in messages."""
    config, warnings, _ = _parse_config(text, source)
    return config, warnings


def state_spool_dir(environ: Mapping[str, str]) -> str:
    """``<StateDirectory>/stats-spool`` under a systemd unit that has a ``StateDirectory``
    (the first one), else "": the directory systemd makes for this service alone, kept
    across restarts, so the downloads a stop during a Redis outage could not write are not
    lost by default. A file's ``StatsSpoolDir`` (even ``""``) wins."""
    first = environ.get(STATE_DIRECTORY_ENV, "").split(":")[0]
    return os.path.join(first, SPOOL_SUBDIRECTORY) if os.path.isabs(first) else ""


def _parse_config(text: str, source: str, base: str | None = None,
                  repository: str | None = None,
                  spool_dir: str = "") -> tuple[Config, list[str], _Parse]:
    """:func:`parse_config`, and the parse that knows the line of each key. *repository*
    (the ``--repository`` option) stands for the file's ``Repository``, which it may lack;
    *spool_dir*: the ``StatsSpoolDir`` of a file that does not set it."""
    parse = _Parse(source, text=text)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_message(err, source)) from None
    except RecursionError:
        raise ConfigError(f"yaml: nesting too deep in {source}") from None
    try:
        values = {} if root is None or _is_null(root) else parse.record((), root, _FIELDS)
        if repository is not None:
            values["repository"] = repository
        values.setdefault("stats_spool_dir", spool_dir)
        config, warnings = _finish(attrs.evolve(Config(), **values), parse.place, base)
    except ConfigError as err:
        err.warnings[:0] = parse.warnings
        raise
    return config, parse.warnings + warnings, parse


def with_repository(config: Config, path: str) -> Config:
    """*config* with ``Repository`` replaced by *path* (normalised and validated)."""
    return _finish(attrs.evolve(config, repository=path))[0]


def with_changes(config: Config, **changes: Any) -> Config:
    """*config* with some settings replaced (normalised and validated as a file's are)."""
    return _finish(attrs.evolve(config, **changes))[0]


# --- validation and normalisation -------------------------------------------------------


def _absolute(path: str, base: str | None) -> str:
    """``path`` from ``base`` (the current directory when None), made absolute: a daemon
    that twistd moves to its ``--rundir`` still means the same file (docs/differences.md)."""
    return os.path.abspath(os.path.join(base, path) if base is not None else path)


def _absolute_if_set(path: str, base: str | None) -> str:
    """:func:`_absolute`, an empty setting left empty (off, or the default)."""
    return _absolute(path, base) if path else ""


def _finish(config: Config, place: Callable[[Finding], str] = str,
            base: str | None = None) -> tuple[Config, list[str]]:
    """Check *config* (:mod:`mirrorbits.configcheck`) and normalise it (idempotent).

    Returns the normalised configuration and its warnings, each message made by *place*
    (which adds where the key is); the first unusable value raises :class:`ConfigError` (the
    reference's checks come first), carrying the warnings.
    """
    warnings = [place(found) for found in value_warnings(config)]
    errors = value_errors(config)
    if errors:
        raise ConfigError(place(errors[0]), warnings)
    geoip = _absolute_if_set(config.geoip_database_path, base)
    if geoip and not geoip.endswith("/"):
        geoip += "/"
    normal = attrs.evolve(
        config,
        repository=_absolute(config.repository, base),
        mirmon_export_file=_absolute_if_set(config.mirmon_export_file, base),
        log_dir=_absolute_if_set(config.log_dir, base),
        stats_spool_dir=_absolute_if_set(config.stats_spool_dir, base),
        templates=_absolute_if_set(config.templates, base),
        rpc_tls_certificate=_absolute_if_set(config.rpc_tls_certificate, base),
        rpc_tls_key=_absolute_if_set(config.rpc_tls_key, base),
        rpc_tls_client_ca=_absolute_if_set(config.rpc_tls_client_ca, base),
        geoip_database_path=geoip,
        repository_scan_interval=max(0, config.repository_scan_interval),
        fallbacks=tuple(_normal_fallback(fallback) for fallback in config.fallbacks),
        trusted_proxies=tuple(
            str(ipaddress.ip_network(text.strip(), strict=False))
            for text in config.trusted_proxies
        ),
    )
    return normal, warnings


def _commented_out(text: str, key: KeyPath) -> int | None:
    """The line of ``#Key:`` when *key*, a top-level key, is only there commented out, as
    every key of the sample configuration is (copied with its value set and the ``#`` kept)."""
    if len(key) != 1 or not isinstance(key[0], str) or not text:
        return None
    pattern = re.compile(rf"#\s*{re.escape(key[0])}\s*:")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line.lstrip()):
            return number
    return None


def _normal_fallback(fallback: Fallback) -> Fallback:
    url = fallback.url if fallback.url.endswith("/") else fallback.url + "/"
    country, continent = fallback.country_code.upper(), fallback.continent_code.upper()
    return Fallback(url=url, country_code=country, continent_code=continent)


# --- YAML nodes to values -----------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT, _STR = (_TAG + name for name in ("null", "bool", "int", "float", "str"))
# Typed bool fields of the reference also take the YAML 1.1 words.
_TRUE_WORDS = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE")
_FALSE_WORDS = ("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE")
_BOOL_WORDS = {word: word in _TRUE_WORDS for word in _TRUE_WORDS + _FALSE_WORDS}
# Exponent forms that YAML 1.1 (PyYAML) leaves as strings but YAML 1.2 reads as floats.
_EXPONENT_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")
_CONSTRUCTOR = SafeConstructor()


@define
class _Parse:
    """State of one parse: where the text comes from, the line of each key and list item
    seen, and the warnings so far."""

    source: str
    lines: dict[KeyPath, int] = field(factory=dict)
    warnings: list[str] = field(factory=list)
    text: str = ""  # the file's text, for a key left commented out (the sample's are)

    def at(self, path: KeyPath, node: Node) -> str:
        """`` (line N in F)``: where *node* starts; remembered as the line of *path*."""
        line = self.lines.setdefault(path, node.start_mark.line + 1)
        return f" (line {line} in {self.source})"

    def place(self, found: Finding) -> str:
        """*found*'s message, ending with the line of its key (or of the nearest enclosing
        one), or with ``(not set in F)`` when the file does not set it."""
        for end in range(len(found.key), 0, -1):
            line = self.lines.get(found.key[:end])
            if line is not None:
                return f"{found.text} (line {line} in {self.source})"
        commented = _commented_out(self.text, found.key)
        if commented is not None:
            return (f"{found.text} (not set in {self.source}: line {commented} is commented "
                    "out, remove its '#')")
        return f"{found.text} (not set in {self.source})"

    def wrong(self, path: KeyPath, node: Node, expected: str) -> ConfigError:
        name = _dotted(path) or "The configuration"
        return ConfigError(f"{name} must be {expected}, not {_describe(node)}"
                           + self.at(path, node))

    def mapping(self, path: KeyPath, node: Node) -> dict[str, tuple[Node, Node]]:
        """The entries of a mapping node by key name; duplicate keys are an error."""
        if not isinstance(node, MappingNode):
            raise self.wrong(path, node, "a mapping of names to values")
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            name = _key_name(key_node)
            line = key_node.start_mark.line + 1
            if name in seen and name != "<<":
                raise ConfigError(
                    f"{_dotted((*path, name))} is set twice (lines {seen[name]} and {line}"
                    f" in {self.source})"
                )
            seen[name] = line
        try:
            _CONSTRUCTOR.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
        except yaml.YAMLError as err:
            raise ConfigError(_yaml_message(err, self.source)) from None
        entries = {_key_name(key_node): (key_node, value) for key_node, value in node.value}
        for name, (key_node, _) in entries.items():
            self.at((*path, name), key_node)
        return entries

    def record(self, path: KeyPath, node: Node, fields: _Fields) -> dict[str, Any]:
        """Attribute values of a mapping; unknown keys are warnings, nulls keep defaults."""
        values: dict[str, Any] = {}
        for name, (key_node, value) in self.mapping(path, node).items():
            if name not in fields:
                self.unknown((*path, name), key_node, fields)
            elif not _is_null(value):
                attribute, convert = fields[name]
                values[attribute] = convert(self, (*path, name), value)
        return values

    def unknown(self, path: KeyPath, node: Node, known: Collection[str]) -> None:
        dotted, name = _dotted(path), _dotted(path[-1:])
        hint = _suggestion(name, known, top_level=name == dotted)
        self.warnings.append(f"unknown configuration key {shown(dotted)}{hint}"
                             + self.at(path, node))


def _suggestion(name: str, known: Collection[str], top_level: bool) -> str:
    """A hint after an unknown key: the key in the right case, a close one, or its parent."""
    same = [other for other in known if other.lower() == name.lower()]
    if same:
        return f"; did you mean '{same[0]}'? (keys are case-sensitive)"
    parent = _PARENTS.get(name.lower()) if top_level else None
    if parent is not None:
        return f"; did you mean to indent it under '{parent}'?"
    by_lower = {other.lower(): other for other in known}
    close = difflib.get_close_matches(name.lower(), by_lower, n=2, cutoff=SUGGESTION_CUTOFF)
    if close:
        return "; did you mean " + " or ".join(f"'{by_lower[key]}'" for key in close) + "?"
    return ""


_Convert = Callable[[_Parse, KeyPath, Node], object]
_Fields = dict[str, tuple[str, _Convert]]


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _key_name(node: Node) -> str:
    return node.value if isinstance(node, ScalarNode) else "<complex key>"


def _dotted(path: KeyPath) -> str:
    """*path* as messages name a key: ``Fallbacks.URL`` (list positions left out)."""
    return ".".join(part for part in path if isinstance(part, str))


def _describe(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    return "null" if _is_null(node) else repr(node.value)


def _yaml_message(err: yaml.YAMLError, source: str) -> str:
    """One line in the style ``<yaml error> in <file>``."""
    if isinstance(err, yaml.MarkedYAMLError):
        begun, found = err.context_mark, err.problem_mark
        if (begun and found and err.context and err.problem and begun.line != found.line
                and any(opened in err.context for opened in ("flow", "quoted"))):
            # an unclosed bracket or quote: the line that opened it, not where the parser
            # gave up (often one past the file's last line, at its end)
            return (f"yaml: line {begun.line + 1}, column {begun.column + 1}: {err.context} "
                    f"(unfinished at line {found.line + 1}, column {found.column + 1}: "
                    f"{err.problem}) in {source}")
        mark = found or begun
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(part for part in (err.context, err.problem) if part)
        return f"yaml: {where}{what} in {source}"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"yaml: {first_line} in {source}"


def _str(parse: _Parse, path: KeyPath, node: Node) -> str:
    # Like the reference, any scalar is taken as written: ``RPCPassword: 1234`` is "1234".
    if isinstance(node, ScalarNode) and node.tag != _NULL:
        return str(node.value)
    raise parse.wrong(path, node, "a string")


def _int(parse: _Parse, path: KeyPath, node: Node) -> int:
    if isinstance(node, ScalarNode) and node.tag == _INT:
        value: int = _CONSTRUCTOR.construct_yaml_int(node)
        if INT_RANGE[0] <= value <= INT_RANGE[1]:
            return value
        raise parse.wrong(path, node, "a 64-bit integer")
    raise parse.wrong(path, node, "an integer")


def _float(parse: _Parse, path: KeyPath, node: Node) -> float:
    if isinstance(node, ScalarNode):
        if node.tag == _INT:
            return float(_CONSTRUCTOR.construct_yaml_int(node))
        if node.tag == _FLOAT:
            return _CONSTRUCTOR.construct_yaml_float(node)
        if node.tag == _STR and node.style is None and _EXPONENT_FLOAT.fullmatch(node.value):
            return float(node.value)
    raise parse.wrong(path, node, "a number")


def _bool(parse: _Parse, path: KeyPath, node: Node) -> bool:
    if isinstance(node, ScalarNode) and node.tag in (_BOOL, _STR):
        value = _BOOL_WORDS.get(node.value)
        if value is not None:
            return value
    raise parse.wrong(path, node, "a boolean (true/false, yes/no, on/off)")


#: What a list key takes, said when it is given something else (often a single value).
LIST_EXPECTED = "a list ([a, b] on one line, or '- ' before each entry on its own line)"


def _list_of(item: _Convert) -> _Convert:
    def convert(parse: _Parse, path: KeyPath, node: Node) -> tuple[object, ...]:
        if not isinstance(node, SequenceNode):
            raise parse.wrong(path, node, LIST_EXPECTED)
        for number, child in enumerate(node.value):
            parse.at((*path, number), child)
        return tuple(item(parse, (*path, number), child)
                     for number, child in enumerate(node.value))

    return convert


def _record_of(make: Callable[..., object], fields: _Fields) -> _Convert:
    def convert(parse: _Parse, path: KeyPath, node: Node) -> object:
        return make(**parse.record(path, node, fields))

    return convert


def _mapping_of(item: _Convert) -> _Convert:
    """A mapping of names to values, kept as (name, value) pairs in the file's order."""

    def convert(parse: _Parse, path: KeyPath, node: Node) -> tuple[tuple[str, object], ...]:
        entries = parse.mapping(path, node)
        return tuple((name, item(parse, (*path, name), value))
                     for name, (_, value) in entries.items())

    return convert


#: What ``RepositoryScanMaxRemove`` takes.
MAX_REMOVE_EXPECTED = "a number of files >= 0 or a share of the indexed files (10%, at most 100%)"


def _removal_limit(parse: _Parse, path: KeyPath, node: Node) -> RemovalLimit:
    if isinstance(node, ScalarNode) and node.tag in (_INT, _STR):
        value = _int(parse, path, node) if node.tag == _INT else str(node.value)
        limit = parse_removal_limit(value)
        if limit is not None:
            return limit
    raise parse.wrong(path, node, MAX_REMOVE_EXPECTED)


def _sentinel_host(parse: _Parse, path: KeyPath, node: Node) -> str:
    return str(parse.record(path, node, {"Host": ("host", _str)}).get("host", ""))


_HASH_FIELDS: _Fields = {
    "SHA1": ("sha1", _bool),
    "SHA256": ("sha256", _bool),
    "MD5": ("md5", _bool),
}
_HTTP_SCAN_FIELDS: _Fields = {
    "Concurrency": ("concurrency", _int),
    "Delay": ("delay", _float),
    "Timeout": ("timeout", _float),
    "MaxHeadRequests": ("max_head_requests", _int),
}
_OUTDATED_FIELDS: _Fields = {"Prefix": ("prefix", _str), "Minutes": ("minutes", _int),
                             "Newer": ("newer", _bool)}
_RETENTION_FIELDS: _Fields = {"Days": ("days", _int), "Months": ("months", _int)}
_FALLBACK_FIELDS: _Fields = {
    "URL": ("url", _str),
    "CountryCode": ("country_code", _str),
    "ContinentCode": ("continent_code", _str),
}


# The top-level key each nested key belongs under (a lost indentation leaves it at the top).
_PARENTS = {
    name.lower(): parent
    for parent, names in (
        ("Hashes", _HASH_FIELDS),
        ("HTTPScan", _HTTP_SCAN_FIELDS),
        ("AllowOutdatedFiles", _OUTDATED_FIELDS),
        ("Fallbacks", _FALLBACK_FIELDS),
        ("RedisSentinels", ("Host",)),
        ("StatsRetention", _RETENTION_FIELDS),
    )
    for name in names
}


def _fallback(**values: str) -> Fallback:
    return Fallback(url=values.pop("url", ""), **values)


_FIELDS: _Fields = {
    "Repository": ("repository", _str),
    "Templates": ("templates", _str),
    "LocalJSPath": ("local_js_path", _str),
    "OutputMode": ("output_mode", _str),
    "ListenAddress": ("listen_address", _str),
    "Gzip": ("gzip", _bool),
    "AllowHTTPToHTTPSRedirects": ("allow_http_to_https_redirects", _bool),
    "SameDownloadInterval": ("same_download_interval", _int),
    "RedisAddress": ("redis_address", _str),
    "RedisPassword": ("redis_password", _str),
    "RedisDB": ("redis_db", _int),
    "RedisSentinelMasterName": ("redis_sentinel_master_name", _str),
    "RedisSentinels": ("redis_sentinels", _list_of(_sentinel_host)),
    "LogDir": ("log_dir", _str),
    "StatsSpoolDir": ("stats_spool_dir", _str),
    "TraceFileLocation": ("trace_file_location", _str),
    "GeoipDatabasePath": ("geoip_database_path", _str),
    "ConcurrentSync": ("concurrent_sync", _int),
    "ScanInterval": ("scan_interval", _int),
    "CheckInterval": ("check_interval", _int),
    "LivenessInterval": ("liveness_interval", _int),
    "VerifyInterval": ("verify_interval", _int),
    "RepositoryScanInterval": ("repository_scan_interval", _int),
    "WatchLocalFiles": ("watch_repository", _bool),
    "RepositoryScanMaxRemove": ("repository_scan_max_remove", _removal_limit),
    "MaxLinkHeaders": ("max_link_headers", _int),
    "FixTimezoneOffsets": ("fix_timezone_offsets", _bool),
    "Hashes": ("hashes", _record_of(Hashes, _HASH_FIELDS)),
    "DisallowRedirects": ("disallow_redirects", _bool),
    "AllowRedirectHosts": ("allow_redirect_hosts", _list_of(_str)),
    "MaxScanEntries": ("max_scan_entries", _int),
    "WeightDistributionRange": ("weight_distribution_range", _float),
    "DisableOnMissingFile": ("disable_on_missing_file", _bool),
    "AllowOutdatedFiles": (
        "allow_outdated_files",
        _list_of(_record_of(OutdatedRule, _OUTDATED_FIELDS)),
    ),
    "Fallbacks": ("fallbacks", _list_of(_record_of(_fallback, _FALLBACK_FIELDS))),
    "GenerationIndexes": ("generation_indexes", _list_of(_str)),
    "RPCListenAddress": ("rpc_listen_address", _str),
    "MetricsListenAddress": ("metrics_listen_address", _str),
    "RPCPassword": ("rpc_password", _str),
    "RPCTLSCertificate": ("rpc_tls_certificate", _str),
    "RPCTLSKey": ("rpc_tls_key", _str),
    "RPCTLSClientCA": ("rpc_tls_client_ca", _str),
    "RPCIdleTimeout": ("rpc_idle_timeout", _float),
    "TrustedProxies": ("trusted_proxies", _list_of(_str)),
    "HTTPReadTimeout": ("http_read_timeout", _float),
    "StatsRetention": ("stats_retention", _record_of(StatsRetention, _RETENTION_FIELDS)),
    "RsyncOptions": ("rsync_options", _mapping_of(_list_of(_str))),
    "MirmonExportFile": ("mirmon_export_file", _str),
    "HTTPScan": ("http_scan", _record_of(HttpScan, _HTTP_SCAN_FIELDS)),
    "Workers": ("workers", _int),
    "CacheFiles": ("cache_files", _int),
}
