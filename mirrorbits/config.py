"""The daemon's YAML configuration (spec §2): parsed, normalised and validated.

Pure apart from :func:`load_config` and :func:`default_config_path`, which look at the
file system. Any problem is a :class:`ConfigError` (never an exit), so a failed reload can
keep the previous configuration.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

import attrs
import yaml
from attrs import define, field, frozen
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mirrorbits.addresses import AddressError, parse_listen_address, split_host_port
from mirrorbits.config_example import EXAMPLE_CONFIG as EXAMPLE_CONFIG
from mirrorbits.model import Fallback, OutdatedRule

DEFAULT_CONFIG_PATH = "/etc/mirrorbits.conf"
NO_CONFIG_MESSAGE = "Configuration could not be found.\n\tUse --config <path>"
OUTPUT_MODES = ("auto", "json", "redirect")
MAX_CONFIG_BYTES = 4 * 1024 * 1024
DEFAULT_HTTP_READ_TIMEOUT = 10.0  # seconds, the reference's (built into its HTTP server)


class ConfigError(Exception):
    """An unusable configuration; ``str(err)`` is a one-line message for the operator.

    ``warnings``: those found before the error (a misspelt key often explains it).
    """

    def __init__(self, message: str, warnings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.warnings: list[str] = list(warnings)


@frozen
class Hashes:
    """Which checksums the local repository scan computes."""

    sha1: bool = False
    sha256: bool = True
    md5: bool = False


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
    trace_file_location: str = ""
    geoip_database_path: str = "/usr/share/GeoIP/"
    concurrent_sync: int = 5
    scan_interval: int = 30
    check_interval: int = 1
    repository_scan_interval: int = 5
    max_link_headers: int = 10
    fix_timezone_offsets: bool = False
    hashes: Hashes = field(factory=Hashes)
    disallow_redirects: bool = False
    weight_distribution_range: float = 1.5
    disable_on_missing_file: bool = False
    allow_outdated_files: tuple[OutdatedRule, ...] = ()
    fallbacks: tuple[Fallback, ...] = ()
    rpc_listen_address: str = "localhost:3390"
    rpc_password: str = ""
    trusted_proxies: tuple[str, ...] = ()
    http_read_timeout: float = DEFAULT_HTTP_READ_TIMEOUT


def default_config_path() -> str | None:
    """``/etc/mirrorbits.conf`` if it exists, else ``None``."""
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None


def load_config(path: str) -> tuple[Config, list[str]]:
    """Read, parse and validate the file at *path*; returns the config and warnings."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        reason = err.strerror or str(err)
        raise ConfigError(
            f"Configuration could not be read from {path}: {reason} (use --config <path>)"
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"Configuration file {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"invalid UTF-8 at byte {err.start} in {path}") from None
    return parse_config(text, path)


def parse_config(text: str, source: str = "<string>") -> tuple[Config, list[str]]:
    """Parse and validate configuration *text*; *source* names it in messages."""
    parse = _Parse(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_message(err, source)) from None
    except RecursionError:
        raise ConfigError(f"yaml: nesting too deep in {source}") from None
    try:
        values = {} if root is None or _is_null(root) else parse.record("", root, _FIELDS)
        config = _finish(attrs.evolve(Config(), **values))
    except ConfigError as err:
        err.warnings[:0] = parse.warnings
        raise
    return config, parse.warnings


def with_repository(config: Config, path: str) -> Config:
    """*config* with ``Repository`` replaced by *path* (normalised and validated)."""
    return _finish(attrs.evolve(config, repository=path))


def with_changes(config: Config, **changes: Any) -> Config:
    """*config* with some settings replaced (normalised and validated as a file's are)."""
    return _finish(attrs.evolve(config, **changes))


# --- validation and normalisation -------------------------------------------------------


def _finish(config: Config) -> Config:
    """Validate *config* (messages of the reference first) and normalise it (idempotent)."""
    if not config.weight_distribution_range > 0:  # also refuses NaN
        raise ConfigError("WeightDistributionRange must be > 0")
    if config.output_mode not in OUTPUT_MODES:
        raise ConfigError("Config: outputMode can only be set to 'auto', 'json' or 'redirect'")
    if not config.repository:
        raise ConfigError("Path to local repository not configured (see mirrorbits.conf)")
    for rule in config.allow_outdated_files:
        if rule.prefix and not rule.prefix.startswith("/"):
            raise ConfigError("AllowOutdatedFiles.Prefix must start with '/'")
        if rule.minutes < 0:
            raise ConfigError("AllowOutdatedFiles.Minutes must be >= 0")
    if config.max_link_headers < 0:
        raise ConfigError("MaxLinkHeaders must be >= 0")
    if config.concurrent_sync < 1:
        raise ConfigError("ConcurrentSync must be >= 1")
    if config.redis_db < 0:
        raise ConfigError("RedisDB must be >= 0")
    _check_address("ListenAddress", config.listen_address, parse_listen_address)
    _check_address("RPCListenAddress", config.rpc_listen_address, parse_listen_address)
    _check_address("RedisAddress", config.redis_address, split_host_port)
    for host in config.redis_sentinels:
        if not host:
            raise ConfigError("RedisSentinels.Host must not be empty")
        _check_address("RedisSentinels.Host", host, split_host_port)
    if not 0 < config.http_read_timeout < math.inf:  # also refuses NaN
        raise ConfigError("HTTPReadTimeout must be a number of seconds > 0")
    geoip = config.geoip_database_path
    if geoip and not geoip.endswith("/"):
        geoip += "/"
    return attrs.evolve(
        config,
        repository=os.path.abspath(config.repository),
        geoip_database_path=geoip,
        repository_scan_interval=max(0, config.repository_scan_interval),
        fallbacks=tuple(_normal_fallback(fallback) for fallback in config.fallbacks),
        trusted_proxies=tuple(_normal_network(text) for text in config.trusted_proxies),
    )


def _check_address(key: str, value: str, parse: Callable[[str], object]) -> None:
    try:
        parse(value)
    except AddressError as err:
        raise ConfigError(f"{key} {value!r} is invalid: {err}") from None


def _normal_fallback(fallback: Fallback) -> Fallback:
    if not fallback.url:
        raise ConfigError("Fallbacks.URL must not be empty")
    url = fallback.url if fallback.url.endswith("/") else fallback.url + "/"
    country, continent = fallback.country_code.upper(), fallback.continent_code.upper()
    return Fallback(url=url, country_code=country, continent_code=continent)


def _normal_network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ConfigError(
            f"TrustedProxies: '{text}' is not an IP address or network (CIDR)"
        ) from None


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
    """State of one parse: where the text comes from, and the warnings so far."""

    source: str
    warnings: list[str] = field(factory=list)

    def wrong(self, key: str, node: Node, expected: str) -> ConfigError:
        name = key or "The configuration"
        line = node.start_mark.line + 1
        return ConfigError(
            f"{name} must be {expected}, not {_describe(node)} (line {line} in {self.source})"
        )

    def mapping(self, key: str, node: Node) -> dict[str, tuple[Node, Node]]:
        """The entries of a mapping node by key name; duplicate keys are an error."""
        if not isinstance(node, MappingNode):
            raise self.wrong(key, node, "a mapping of names to values")
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            name = _key_name(key_node)
            line = key_node.start_mark.line + 1
            if name in seen and name != "<<":
                raise ConfigError(
                    f"{_join(key, name)} is set twice (lines {seen[name]} and {line}"
                    f" in {self.source})"
                )
            seen[name] = line
        try:
            _CONSTRUCTOR.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
        except yaml.YAMLError as err:
            raise ConfigError(_yaml_message(err, self.source)) from None
        return {_key_name(key_node): (key_node, value) for key_node, value in node.value}

    def record(self, key: str, node: Node, fields: _Fields) -> dict[str, Any]:
        """Attribute values of a mapping; unknown keys are warnings, nulls keep defaults."""
        values: dict[str, Any] = {}
        for name, (key_node, value) in self.mapping(key, node).items():
            path = _join(key, name)
            if name not in fields:
                self.unknown(path, key_node, fields)
            elif not _is_null(value):
                attribute, convert = fields[name]
                values[attribute] = convert(self, path, value)
        return values

    def unknown(self, path: str, node: Node, known: Collection[str]) -> None:
        name = path.rpartition(".")[2]
        line = node.start_mark.line + 1
        message = f"unknown configuration key '{path}' in {self.source} (line {line})"
        close = [other for other in known if other.lower() == name.lower()]
        if close:
            message += f"; did you mean '{close[0]}'? (keys are case-sensitive)"
        self.warnings.append(message)


_Convert = Callable[[_Parse, str, Node], Any]
_Fields = dict[str, tuple[str, _Convert]]


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _key_name(node: Node) -> str:
    return node.value if isinstance(node, ScalarNode) else "<complex key>"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    return "null" if _is_null(node) else repr(node.value)


def _yaml_message(err: yaml.YAMLError, source: str) -> str:
    """One line in the style ``<yaml error> in <file>``."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(part for part in (err.context, err.problem) if part)
        return f"yaml: {where}{what} in {source}"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"yaml: {first_line} in {source}"


def _str(parse: _Parse, key: str, node: Node) -> str:
    # Like the reference, any scalar is taken as written: ``RPCPassword: 1234`` is "1234".
    if isinstance(node, ScalarNode) and node.tag != _NULL:
        return str(node.value)
    raise parse.wrong(key, node, "a string")


def _int(parse: _Parse, key: str, node: Node) -> int:
    if isinstance(node, ScalarNode) and node.tag == _INT:
        return _CONSTRUCTOR.construct_yaml_int(node)
    raise parse.wrong(key, node, "an integer")


def _float(parse: _Parse, key: str, node: Node) -> float:
    if isinstance(node, ScalarNode):
        if node.tag == _INT:
            return float(_CONSTRUCTOR.construct_yaml_int(node))
        if node.tag == _FLOAT:
            return _CONSTRUCTOR.construct_yaml_float(node)
        if node.tag == _STR and node.style is None and _EXPONENT_FLOAT.fullmatch(node.value):
            return float(node.value)
    raise parse.wrong(key, node, "a number")


def _bool(parse: _Parse, key: str, node: Node) -> bool:
    if isinstance(node, ScalarNode) and node.tag in (_BOOL, _STR):
        value = _BOOL_WORDS.get(node.value)
        if value is not None:
            return value
    raise parse.wrong(key, node, "a boolean (true/false, yes/no, on/off)")


def _list_of(item: _Convert) -> _Convert:
    def convert(parse: _Parse, key: str, node: Node) -> tuple[Any, ...]:
        if not isinstance(node, SequenceNode):
            raise parse.wrong(key, node, "a list")
        return tuple(item(parse, key, child) for child in node.value)

    return convert


def _record_of(make: Callable[..., Any], fields: _Fields) -> _Convert:
    def convert(parse: _Parse, key: str, node: Node) -> Any:
        return make(**parse.record(key, node, fields))

    return convert


def _sentinel_host(parse: _Parse, key: str, node: Node) -> str:
    return str(parse.record(key, node, {"Host": ("host", _str)}).get("host", ""))


_HASH_FIELDS: _Fields = {
    "SHA1": ("sha1", _bool),
    "SHA256": ("sha256", _bool),
    "MD5": ("md5", _bool),
}
_OUTDATED_FIELDS: _Fields = {"Prefix": ("prefix", _str), "Minutes": ("minutes", _int)}
_FALLBACK_FIELDS: _Fields = {
    "URL": ("url", _str),
    "CountryCode": ("country_code", _str),
    "ContinentCode": ("continent_code", _str),
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
    "TraceFileLocation": ("trace_file_location", _str),
    "GeoipDatabasePath": ("geoip_database_path", _str),
    "ConcurrentSync": ("concurrent_sync", _int),
    "ScanInterval": ("scan_interval", _int),
    "CheckInterval": ("check_interval", _int),
    "RepositoryScanInterval": ("repository_scan_interval", _int),
    "MaxLinkHeaders": ("max_link_headers", _int),
    "FixTimezoneOffsets": ("fix_timezone_offsets", _bool),
    "Hashes": ("hashes", _record_of(Hashes, _HASH_FIELDS)),
    "DisallowRedirects": ("disallow_redirects", _bool),
    "WeightDistributionRange": ("weight_distribution_range", _float),
    "DisableOnMissingFile": ("disable_on_missing_file", _bool),
    "AllowOutdatedFiles": (
        "allow_outdated_files",
        _list_of(_record_of(OutdatedRule, _OUTDATED_FIELDS)),
    ),
    "Fallbacks": ("fallbacks", _list_of(_record_of(_fallback, _FALLBACK_FIELDS))),
    "RPCListenAddress": ("rpc_listen_address", _str),
    "RPCPassword": ("rpc_password", _str),
    "TrustedProxies": ("trusted_proxies", _list_of(_str)),
    "HTTPReadTimeout": ("http_read_timeout", _float),
}
