"""The configuration file: defaults, types, validation, normalisation (spec §2)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs
import pytest

from mirrorbits import config as config_module
from mirrorbits.config import (
    DEFAULT_CONFIG_PATH,
    EXAMPLE_CONFIG,
    Config,
    ConfigError,
    Hashes,
    HttpScan,
    default_config_path,
    load_config,
    parse_config,
    with_repository,
)
from mirrorbits.configcheck import shown as shown_value
from mirrorbits.model import Fallback, OutdatedRule
from mirrorbits.scan.removals import RemovalLimit

REPO = "Repository: /srv/repo\n"

# The configuration of the public conformance recording (conformance README §1.5).
CONFORMANCE_CONFIG = """\
Repository: /ROOT/repo
Templates: /path/to/reference/templates
LogDir: /ROOT/logs
GeoipDatabasePath: /ROOT/geo/
OutputMode: auto
Gzip: false
ListenAddress: 127.0.0.1:8930
RPCListenAddress: 127.0.0.1:8932
RPCPassword: conformance-rpc
RedisAddress: 127.0.0.1:6399
RedisDB: 3
AllowHTTPToHTTPSRedirects: false
SameDownloadInterval: 300
TraceFileLocation: /.mirror-trace
RepositoryScanInterval: 0
ScanInterval: 720
CheckInterval: 1
ConcurrentSync: 2
MaxLinkHeaders: 3
WeightDistributionRange: 2.0
FixTimezoneOffsets: false
DisallowRedirects: false
DisableOnMissingFile: false
Hashes:
    SHA1: yes
    SHA256: On
    MD5: true
AllowOutdatedFiles:
    - Prefix: /dists/
      Minutes: 90
    - Prefix: /pool/contrib/
      Minutes: 0
Fallbacks:
    - URL: fb1.example.net/conformance
      CountryCode: es
      ContinentCode: eu
    - URL: http://fb2.example.net/conformance/
      CountryCode: ca
      ContinentCode: na
    - URL: https://fb3.example.net/conformance/
      CountryCode: za
      ContinentCode: af
"""


# Where a message says the key it is about is: its line, or that the file does not set it.
PLACE = re.compile(r"(?P<text>.*) \((?:line (?P<line>\d+)|not set) in (?P<source>[^()]+)\)")


def placed(message: str, source: str = "test.conf") -> tuple[str, int | None]:
    """*message* as what it says and the line of *source* it names (None: "not set in");
    fails unless it ends with where the key is."""
    match = PLACE.fullmatch(message)
    assert match is not None and match["source"] == source, message
    return match["text"], int(match["line"]) if match["line"] else None


def parse(text: str, *expected_warnings: str) -> Config:
    """The configuration of *text*, checking its warnings (each naming where it is)."""
    config, warnings = parse_config(text, "test.conf")
    assert [placed(warning)[0] for warning in warnings] == list(expected_warnings)
    return config


HASHES_OFF = (
    "Hashes: SHA1, SHA256 and MD5 are all off: no checksum is computed, so ?md5, ?sha1 and "
    "?sha256 answer 404 and the mirror list and JSON answers show none"
)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.conf")
    return str(info.value)


def error_at(text: str) -> tuple[str, int | None]:
    """The error of *text*: what it says, and the line it names."""
    return placed(error_of(text))


# --- defaults and values ------------------------------------------------------------------


def test_only_repository_gives_reference_defaults() -> None:
    config = parse(REPO)
    assert config == Config(repository="/srv/repo")
    assert config.output_mode == "auto"
    assert config.listen_address == ":8080"
    assert config.allow_http_to_https_redirects is True
    assert config.same_download_interval == 600
    assert config.redis_address == "127.0.0.1:6379"
    assert config.geoip_database_path == "/usr/share/GeoIP/"
    assert (config.concurrent_sync, config.scan_interval, config.check_interval) == (5, 30, 1)
    assert config.repository_scan_interval == 5
    assert config.max_link_headers == 10
    assert config.hashes == Hashes(sha1=False, sha256=True, md5=False)
    assert config.weight_distribution_range == 1.5
    assert config.rpc_listen_address == "localhost:3390"
    assert config.trusted_proxies == ()
    assert config.templates == ""


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n\n", "---\n", "~\n"])
def test_empty_file_means_defaults_and_so_no_repository(text: str) -> None:
    assert error_at(text) == (
        "Path to local repository not configured (see mirrorbits.conf)", None)


def test_conformance_configuration() -> None:
    config = parse(CONFORMANCE_CONFIG)
    assert config == Config(
        repository="/ROOT/repo",
        templates="/path/to/reference/templates",
        log_dir="/ROOT/logs",
        geoip_database_path="/ROOT/geo/",
        output_mode="auto",
        gzip=False,
        listen_address="127.0.0.1:8930",
        rpc_listen_address="127.0.0.1:8932",
        rpc_password="conformance-rpc",
        redis_address="127.0.0.1:6399",
        redis_db=3,
        allow_http_to_https_redirects=False,
        same_download_interval=300,
        trace_file_location="/.mirror-trace",
        repository_scan_interval=0,
        scan_interval=720,
        check_interval=1,
        concurrent_sync=2,
        max_link_headers=3,
        weight_distribution_range=2.0,
        hashes=Hashes(sha1=True, sha256=True, md5=True),
        allow_outdated_files=(OutdatedRule("/dists/", 90), OutdatedRule("/pool/contrib/", 0)),
        fallbacks=(
            Fallback("fb1.example.net/conformance/", "ES", "EU"),
            Fallback("http://fb2.example.net/conformance/", "CA", "NA"),
            Fallback("https://fb3.example.net/conformance/", "ZA", "AF"),
        ),
    )


def test_every_scalar_key_is_read() -> None:
    config = parse(
        REPO
        + "LocalJSPath: /static/\nRedisPassword: secret\nRedisSentinelMasterName: main\n"
        + "RedisSentinels:\n  - Host: 10.0.0.1:26379\n  - Host: '[::1]:26379'\n"
        + "FixTimezoneOffsets: true\nDisallowRedirects: yes\nDisableOnMissingFile: on\n"
        + "Gzip: true\nOutputMode: json\n"
    )
    assert config.local_js_path == "/static/"
    assert config.redis_password == "secret"
    assert config.redis_sentinel_master_name == "main"
    assert config.redis_sentinels == ("10.0.0.1:26379", "[::1]:26379")
    assert config.fix_timezone_offsets and config.disallow_redirects
    assert config.disable_on_missing_file and config.gzip
    assert config.output_mode == "json"


def test_strings_are_taken_as_written() -> None:
    config = parse(REPO + "RPCPassword: 1234\nRedisPassword: yes\nListenAddress: :9000\n")
    assert config.rpc_password == "1234"
    assert config.redis_password == "yes"
    assert config.listen_address == ":9000"


def test_empty_value_keeps_the_default_and_quoted_empty_string_is_empty() -> None:
    config = parse(REPO + "ListenAddress:\nRPCListenAddress: ~\nGeoipDatabasePath: ''\n")
    assert config.listen_address == ":8080"
    assert config.rpc_listen_address == "localhost:3390"
    assert config.geoip_database_path == ""


def test_hashes_keep_defaults_for_missing_subkeys() -> None:
    assert parse(REPO + "Hashes: {SHA1: y}\n").hashes == Hashes(True, True, False)
    assert parse(REPO + "Hashes:\n  SHA256: Off\n", HASHES_OFF).hashes == Hashes(
        False, False, False)


def test_http_scan_settings() -> None:
    assert parse(REPO).http_scan == HttpScan(concurrency=4, delay=0.0, timeout=30.0,
                                             max_head_requests=10_000)
    text = "HTTPScan: {Concurrency: 2, Delay: 0.5, Timeout: 10, MaxHeadRequests: 0}\n"
    assert parse(REPO + text).http_scan == HttpScan(2, 0.5, 10.0, 0)
    assert error_at(REPO + "HTTPScan: {Concurrency: 0}\n") == (
        "HTTPScan.Concurrency must be from 1 to 64 (requests at a time to one mirror), not 0", 2)
    assert error_at(REPO + "HTTPScan: {Delay: -1}\n") == (
        "HTTPScan.Delay must be a number of seconds from 0 to 3600, not -1", 2)
    assert error_at(REPO + "HTTPScan:\n  Delay: 1\n  Timeout: .nan\n") == (
        "HTTPScan.Timeout must be a number of seconds > 0 and <= 3600, not nan", 4)
    assert error_at(REPO + "HTTPScan: {MaxHeadRequests: -5}\n") == (
        "HTTPScan.MaxHeadRequests must be >= 0, not -5", 2)
    parse(REPO + "Concurrency: 3\n",
          "unknown configuration key 'Concurrency'; did you mean to indent it under 'HTTPScan'?")


def test_numbers() -> None:
    config = parse(REPO + "WeightDistributionRange: 3\nScanInterval: 0x10\n")
    assert config.weight_distribution_range == 3.0
    assert config.scan_interval == 16
    assert parse(REPO + "WeightDistributionRange: 1e1\n").weight_distribution_range == 10.0


# --- booleans -----------------------------------------------------------------------------

TRUE_WORDS = ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"]
FALSE_WORDS = ["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"]


@pytest.mark.parametrize("word", TRUE_WORDS)
def test_yaml_1_1_true_words(word: str) -> None:
    config = parse(REPO + f"Gzip: {word}\nAllowHTTPToHTTPSRedirects: {word}\n")
    assert config.gzip is True
    assert config.allow_http_to_https_redirects is True


@pytest.mark.parametrize("word", FALSE_WORDS)
def test_yaml_1_1_false_words(word: str) -> None:
    config = parse(
        REPO + f"Gzip: {word}\nAllowHTTPToHTTPSRedirects: {word}\nHashes: {{SHA256: {word}}}",
        HASHES_OFF,
    )
    assert config.gzip is False
    assert config.allow_http_to_https_redirects is False
    assert config.hashes.sha256 is False


@pytest.mark.parametrize("value", ["maybe", "1", "0", "yEs", "[]"])
def test_non_boolean_is_refused_with_key_and_value(value: str) -> None:
    message = error_of(REPO + f"Gzip: {value}\n")
    assert message.startswith("Gzip must be a boolean")
    assert "line 2 in test.conf" in message
    if value != "[]":
        assert f"'{value}'" in message


# --- wrong types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "start"),
    [
        ("ScanInterval: soon", "ScanInterval must be an integer, not 'soon'"),
        ("ScanInterval: '5'", "ScanInterval must be an integer, not '5'"),
        ("ScanInterval: 2.5", "ScanInterval must be an integer, not '2.5'"),
        ("RedisDB: true", "RedisDB must be an integer, not 'true'"),
        ("WeightDistributionRange: wide", "WeightDistributionRange must be a number, not 'wide'"),
        ("Templates: [a, b]", "Templates must be a string, not a list"),
        ("RPCPassword: {a: b}", "RPCPassword must be a string, not a mapping"),
        ("Fallbacks: http://x/", "Fallbacks must be a list ([a, b] on one line, or '- ' before "
                                 "each entry on its own line), not 'http://x/'"),
        ("Fallbacks: [http://x/]", "Fallbacks must be a mapping of names to values"),
        ("Hashes: yes", "Hashes must be a mapping of names to values, not 'yes'"),
        ("AllowOutdatedFiles: [{Prefix: /a/, Minutes: x}]", "AllowOutdatedFiles.Minutes must be"),
        ("TrustedProxies: 10.0.0.1", "TrustedProxies must be a list ([a, b] on one line, or '- ' "
                                     "before each entry on its own line), not '10.0.0.1'"),
        ("TrustedProxies: [~]", "TrustedProxies must be a string, not null"),
    ],
)
def test_wrong_type_names_the_key(line: str, start: str) -> None:
    assert error_of(REPO + line + "\n").startswith(start)


def test_top_level_must_be_a_mapping() -> None:
    assert error_of("- Repository: /srv\n").startswith(
        "The configuration must be a mapping of names to values, not a list"
    )


def test_duplicate_key_is_an_error() -> None:
    assert error_of(REPO + "Gzip: true\nGzip: false\n") == (
        "Gzip is set twice (lines 2 and 3 in test.conf)"
    )


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The reference's messages (spec §2), then the value given.
        ("WeightDistributionRange: 0", "WeightDistributionRange must be > 0, not 0"),
        ("WeightDistributionRange: -1.5", "WeightDistributionRange must be > 0, not -1.5"),
        ("WeightDistributionRange: .nan", "WeightDistributionRange must be > 0, not nan"),
        (
            "OutputMode: bogus",
            "Config: outputMode can only be set to 'auto', 'json' or 'redirect', not 'bogus'",
        ),
        (
            "OutputMode: JSON",
            "Config: outputMode can only be set to 'auto', 'json' or 'redirect', not 'JSON'",
        ),
        (
            "AllowOutdatedFiles: [{Prefix: dists/, Minutes: 5}]",
            "AllowOutdatedFiles.Prefix must start with '/', not 'dists/'",
        ),
        (
            "AllowOutdatedFiles: [{Prefix: /dists/, Minutes: -1}]",
            "AllowOutdatedFiles.Minutes must be >= 0, not -1",
        ),
        ("MaxLinkHeaders: -1", "MaxLinkHeaders must be >= 0, not -1"),
        ("ConcurrentSync: 0",
         "ConcurrentSync must be >= 1 (mirrors scanned at the same time), not 0"),
        ("ConcurrentSync: -3",
         "ConcurrentSync must be >= 1 (mirrors scanned at the same time), not -3"),
        ("RedisDB: -2", "RedisDB must be >= 0, not -2"),
        ("ScanInterval: -5", "ScanInterval must be a number of minutes >= 0, not -5"),
        ("CheckInterval: -1", "CheckInterval must be a number of minutes >= 0, not -1"),
        ("LivenessInterval: -1", "LivenessInterval must be a number of seconds >= 0 (0: no "
                                 "liveness probes), not -1"),
        ("VerifyInterval: -2", "VerifyInterval must be a number of seconds >= 0 (0: no file "
                               "verification), not -2"),
        ("RedisSentinels: [{Host: ''}]", "RedisSentinels.Host must not be empty (entry 1)"),
        ("Fallbacks: [{URL: fb.example.org}, {CountryCode: FR}]",
         "Fallbacks.URL must not be empty (entry 2)"),
        ("ListenAddress: '127.0.0.1:99999'", "ListenAddress '127.0.0.1:99999' is invalid: "
                                            "the port must be between 0 and 65535, not 99999"),
        ("ListenAddress: nonsense",
         "ListenAddress 'nonsense' is invalid: expected host:port or unix:/path"),
        ("RPCListenAddress: 'unix:'", "RPCListenAddress 'unix:' is invalid: "
                                      "empty UNIX socket path"),
        ("RedisAddress: nonsense", "RedisAddress 'nonsense' is invalid: expected host:port (the "
                                   "port is missing: 'nonsense:PORT')"),
        ("RPCTLSCertificate: /etc/m/cert.pem",
         "RPCTLSCertificate needs RPCTLSClientCA: the CA (PEM file) whose certificates the "
         "clients must present"),
        ("RPCTLSKey: /etc/m/key.pem\nRPCTLSClientCA: /etc/m/ca.pem",
         "RPCTLSKey and RPCTLSClientCA set without RPCTLSCertificate: set the daemon's "
         "certificate too, or remove them"),
        ("RPCTLSCertificate: /c.pem\nRPCListenAddress: unix:/run/m.sock\nRPCTLSClientCA: /a.pem",
         "RPCTLSCertificate applies to a TCP RPCListenAddress, not to the UNIX socket "
         "'unix:/run/m.sock' (its file mode protects it)"),
        ("RedisAddress: '::1:6379'", "RedisAddress '::1:6379' is invalid: an IPv6 address "
                                     "must be written in brackets: [address]:port"),
        ("RedisSentinels: [{Host: '10.0.0.1:0'}]", "RedisSentinels.Host '10.0.0.1:0' is "
                                                   "invalid: the port must be between 1 and "
                                                   "65535, not 0"),
        *[(f"HTTPReadTimeout: {bad}", f"HTTPReadTimeout must be a number of seconds > 0, "
           f"not {shown}")
          for bad, shown in (("0", "0"), ("-1", "-1"), (".nan", "nan"), (".inf", "inf"))],
        ("RPCIdleTimeout: 0", "RPCIdleTimeout must be a number of seconds > 0, not 0"),
        ("Fallbacks: [{URL: 'ftp://fb.example.org/pub/'}]",
         "Fallbacks.URL 'ftp://fb.example.org/pub/' is invalid: it must start with http:// or "
         "https://, or have no scheme (then it serves both)"),
        ("Fallbacks: [{URL: 'htps://fb.example.org/'}]",
         "Fallbacks.URL 'htps://fb.example.org/' is invalid: it must start with http:// or "
         "https://, or have no scheme (then it serves both)"),
        ("Fallbacks: [{URL: 'HTTP://fb.example.org/'}]",
         "Fallbacks.URL 'HTTP://fb.example.org/' is invalid: it must start with http:// or "
         "https://, or have no scheme (then it serves both)"),
        ("Fallbacks: [{URL: /pub/}]",
         "Fallbacks.URL '/pub/' is invalid: it names no host (write host/path, "
         "http://host/path or https://host/path)"),
        ("Fallbacks: [{URL: 'https://'}]",
         "Fallbacks.URL 'https://' is invalid: it names no host (write host/path, "
         "http://host/path or https://host/path)"),
        ("Fallbacks: [{URL: 'fb.example.org:http/'}]",
         "Fallbacks.URL 'fb.example.org:http/' is invalid: Port could not be cast to integer "
         "value as 'http'"),
        ("Fallbacks: [{URL: \"fb.example.org/a\\tb/\"}]",
         "Fallbacks.URL 'fb.example.org/a\\tb/' is invalid: it contains a control character (a "
         "tab, a line break...)"),
        ("Fallbacks: [{URL: 'http://fb example.org/pub files/'}]",
         "Fallbacks.URL 'http://fb example.org/pub files/' is invalid: its host 'fb example.org' "
         "has a space (one in the path is fine)"),
        ("Fallbacks: [{URL: fb.example.org, CountryCode: FRA}]",
         "Fallbacks.CountryCode 'FRA' is invalid: a country code is two letters (ISO 3166-1, "
         "e.g. FR), several are separated by spaces"),
        ("Fallbacks: [{URL: fb.example.org, CountryCode: 'FR,DE'}]",
         "Fallbacks.CountryCode 'FR,DE' is invalid: a country code is two letters (ISO 3166-1, "
         "e.g. FR), several are separated by spaces"),
        ("Fallbacks: [{URL: fb.example.org, ContinentCode: Europe}]",
         "Fallbacks.ContinentCode 'Europe' is invalid: it must be one of AF, AN, AS, EU, NA, "
         "OC, SA"),
        ("Fallbacks: [{URL: fb.example.org, ContinentCode: EA}]",
         "Fallbacks.ContinentCode 'EA' is invalid: it must be one of AF, AN, AS, EU, NA, OC, "
         "SA"),
        ("ScanInterval: 99999999999999999999",
         "ScanInterval must be a 64-bit integer, not '99999999999999999999'"),
    ],
)
def test_validation_messages(text: str, message: str) -> None:
    assert error_at(REPO + text + "\n") == (message, 2)  # the line of the key in question


def test_missing_repository() -> None:
    assert error_at("Gzip: true\n") == (
        "Path to local repository not configured (see mirrorbits.conf)", None)
    assert error_at("Gzip: true\nRepository: ''\n") == (
        "Path to local repository not configured (see mirrorbits.conf)", 2)


def test_reference_checks_come_first() -> None:
    # Several problems: the message is the one the reference would give.
    assert error_at("OutputMode: x\nWeightDistributionRange: 0\n") == (
        "WeightDistributionRange must be > 0, not 0", 2)
    assert error_at("OutputMode: x\n") == (
        "Config: outputMode can only be set to 'auto', 'json' or 'redirect', not 'x'", 1)


def test_outdated_rules_accept_empty_prefix_and_zero_minutes() -> None:
    config = parse(REPO + "AllowOutdatedFiles:\n  - Minutes: 0\n  - Prefix: /\n",
                   "AllowOutdatedFiles: the rule for '/' never applies: the earlier rule for '' "
                   "matches first")
    assert config.allow_outdated_files == (OutdatedRule("", 0), OutdatedRule("/", 0))


def test_an_outdated_rule_may_accept_newer_copies() -> None:
    config = parse(REPO + "AllowOutdatedFiles:\n  - Prefix: /releases/\n    Newer: true\n")
    assert config.allow_outdated_files == (OutdatedRule("/releases/", 0, newer=True),)


# --- normalisation ------------------------------------------------------------------------


def test_repository_is_made_absolute_and_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse("Repository: /srv//repo/./sub/\n").repository == "/srv/repo/sub"
    assert parse("Repository: repo/\n").repository == str(tmp_path / "repo")


def test_geoip_path_gets_a_trailing_slash() -> None:
    assert parse(REPO + "GeoipDatabasePath: /var/geo\n").geoip_database_path == "/var/geo/"
    assert parse(REPO + "GeoipDatabasePath: /var/geo/\n").geoip_database_path == "/var/geo/"


def test_negative_repository_scan_interval_is_clamped() -> None:
    config = parse(REPO + "RepositoryScanInterval: -3\n",
                   "RepositoryScanInterval: -3 is taken as 0: the local repository is scanned "
                   "only on request (mirrorbits-ctl refresh)")
    assert config.repository_scan_interval == 0


def test_fallbacks_normalised() -> None:
    config = parse(
        REPO
        + "Fallbacks:\n"
        + "  - URL: https://fb.example.org/pub\n    CountryCode: fr\n    ContinentCode: eu\n"
        + "  - URL: fb2.example.org/\n"
    )
    assert config.fallbacks == (
        Fallback("https://fb.example.org/pub/", "FR", "EU"),
        Fallback("fb2.example.org/", "", ""),
    )


def test_http_read_timeout() -> None:
    assert parse(REPO).http_read_timeout == 10.0  # the reference's HTTP server has 10 s
    assert parse(REPO + "HTTPReadTimeout: 2.5\n").http_read_timeout == 2.5
    assert parse(REPO + "HTTPReadTimeout: 30\n").http_read_timeout == 30.0
    assert parse(REPO).rpc_idle_timeout == 300.0
    assert parse(REPO + "RPCIdleTimeout: 60\n").rpc_idle_timeout == 60.0
    assert error_of(REPO + "HTTPReadTimeout: soon\n").startswith(
        "HTTPReadTimeout must be a number, not 'soon'")


def test_workers() -> None:
    assert parse(REPO).workers is None  # one per core, decided by the daemon
    assert parse(REPO + "Workers: 3\n").workers == 3
    assert parse(REPO + "Workers: 1\n").workers == 1
    for bad in ("0", "-2"):
        assert error_at(REPO + f"Workers: {bad}\n") == (
            "Workers must be a number of HTTP processes >= 1 (1: this process serves alone), "
            f"not {bad}", 2)
    assert error_of(REPO + "Workers: many\n").startswith("Workers must be an integer")


def test_cache_files() -> None:
    assert parse(REPO).cache_files == 200_000
    assert parse(REPO + "CacheFiles: 5000\n").cache_files == 5000
    assert error_at(REPO + "CacheFiles: 0\n") == (
        "CacheFiles must be a number of files >= 1 (held in each HTTP process' cache), not 0", 2)


def test_trusted_proxies() -> None:
    config = parse(
        REPO + "TrustedProxies:\n  - 127.0.0.1\n  - 10.1.2.3/8\n  - '::1'\n  - 2001:db8::/32\n",
        "TrustedProxies: '10.1.2.3/8' has host bits set: taken as 10.0.0.0/8",
    )
    assert config.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128", "2001:db8::/32")


@pytest.mark.parametrize("bad", ["proxy.example.org", "10.0.0.0/33", "300.1.1.1", "''"])
def test_bad_trusted_proxy_is_named(bad: str) -> None:
    message, line = error_at(REPO + f"TrustedProxies:\n  - 127.0.0.1\n  - {bad}\n")
    shown = "" if bad == "''" else bad
    assert message == f"TrustedProxies: '{shown}' is not an IP address or network (CIDR)"
    assert line == 4  # the line of the entry, not of the key


def test_with_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = parse(REPO + "Gzip: yes\n")
    changed = with_repository(base, "mirror/")
    assert changed == attrs.evolve(base, repository=str(tmp_path / "mirror"))
    assert with_repository(Config(), "/data/") == Config(repository="/data")
    with pytest.raises(ConfigError, match="Path to local repository not configured"):
        with_repository(Config(), "")


@pytest.mark.parametrize(("text", "environ", "spool"), [
    ("", {}, ""),  # the reference's behaviour: not kept
    ("", {"STATE_DIRECTORY": "/var/lib/mirrorbits"}, "/var/lib/mirrorbits/stats-spool"),
    ("", {"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a/stats-spool"),
    ("", {"STATE_DIRECTORY": "relative"}, ""),  # not systemd's
    ("StatsSpoolDir:\n", {"STATE_DIRECTORY": "/var/lib/m"}, "/var/lib/m/stats-spool"),
    ("StatsSpoolDir: ''\n", {"STATE_DIRECTORY": "/var/lib/m"}, ""),  # turned off
    ("StatsSpoolDir: /srv/spool\n", {"STATE_DIRECTORY": "/var/lib/m"}, "/srv/spool"),
])
def test_stats_spool_dir_defaults_to_the_systemd_state_directory(
        tmp_path: Path, text: str, environ: dict[str, str], spool: str) -> None:
    path = tmp_path / "mirrorbits.conf"
    path.write_text(REPO + text)
    assert load_config(str(path), environ=environ)[0].stats_spool_dir == spool


def test_parsed_config_is_stable_under_with_repository() -> None:
    config = parse(CONFORMANCE_CONFIG + "TrustedProxies: [10.0.0.1]\n")
    assert with_repository(config, config.repository) == config


# --- warnings -----------------------------------------------------------------------------


def test_unknown_keys_are_warnings() -> None:
    config, warnings = parse_config(REPO + "Foo: 1\nHashes: {CRC32: yes}\n", "my.conf")
    assert config == Config(repository="/srv/repo")
    assert warnings == [
        "unknown configuration key 'Foo' (line 2 in my.conf)",
        "unknown configuration key 'Hashes.CRC32' (line 3 in my.conf)",
    ]


def test_wrong_case_key_is_a_warning_with_a_hint_and_kept_on_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("repository: /srv/repo\n", "my.conf")
    assert str(info.value) == (
        "Path to local repository not configured (see mirrorbits.conf) (not set in my.conf)")
    assert info.value.warnings == [
        "unknown configuration key 'repository'; did you mean 'Repository'? (keys are "
        "case-sensitive) (line 1 in my.conf)"
    ]


def warnings_of(text: str) -> list[str]:
    return parse_config(REPO + text, "my.conf")[1]


def warnings_at(text: str) -> list[tuple[str, int | None]]:
    """The warnings of *text* after ``Repository``: what each says, and the line it names."""
    return [placed(warning, "my.conf") for warning in warnings_of(text)]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("Repositry: /srv/other\n", "did you mean 'Repository'?"),
        ("ScanIntervall: 60\n", "did you mean 'ScanInterval'?"),
        ("GeoIPDatabasePath: /geo\n",
         "did you mean 'GeoipDatabasePath'? (keys are case-sensitive)"),
        ("Fallbacks: [{Url: fb.example.org}]\n", "did you mean 'URL'? (keys are case-sensitive)"),
        ("Hashes: {SHA265: yes}\n", "did you mean 'SHA256'?"),
        ("AllowOutdatedFiles: [{Prefix: /a/, Minute: 5}]\n", "did you mean 'Minutes'?"),
        ("RedisSentinels: [{Hots: '10.0.0.1:26379'}]\nRedisSentinelMasterName: m\n",
         "did you mean 'Host'?"),
        ("Password: x\n", "did you mean 'RPCPassword' or 'RedisPassword'?"),
        ("Hashes:\nSHA1: yes\n", "did you mean to indent it under 'Hashes'?"),
        ("CountryCode: FR\n", "did you mean to indent it under 'Fallbacks'?"),
    ],
)
def test_unknown_key_suggests_the_closest_known_one(text: str, hint: str) -> None:
    try:
        warnings = warnings_of(text)
    except ConfigError as err:  # the misspelt key left a required value empty
        warnings = err.warnings
    with_hint = [warning for warning in warnings if "unknown configuration key" in warning]
    assert len(with_hint) == 1 and placed(with_hint[0], "my.conf")[0].endswith("; " + hint)


def test_unknown_key_far_from_any_known_one_gets_no_hint() -> None:
    assert warnings_of("Foo: 1\ncommon: 2\n") == [
        "unknown configuration key 'Foo' (line 2 in my.conf)",
        "unknown configuration key 'common' (line 3 in my.conf)",
    ]


def test_a_misspelt_key_explains_the_error_it_causes() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("Repositry: /srv/repo\nScanInterval: 0\nWeightDistributionRange: -1\n",
                     "my.conf")
    assert str(info.value) == "WeightDistributionRange must be > 0, not -1 (line 3 in my.conf)"
    assert info.value.warnings == [
        "unknown configuration key 'Repositry'; did you mean 'Repository'? (line 1 in my.conf)",
        "ScanInterval: 0 rescans every mirror as soon as its previous scan ends "
        "(ConcurrentSync at a time); it is a number of minutes, 30 by default (line 2 in my.conf)",
    ]


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("ScanInterval: 0", "ScanInterval: 0 rescans every mirror as soon as its previous scan "
                            "ends (ConcurrentSync at a time); it is a number of minutes, 30 by "
                            "default"),
        ("CheckInterval: 0", "CheckInterval: 0 health-checks every mirror every second; it is a "
                             "number of minutes, 1 by default"),
        ("SameDownloadInterval: -10", "SameDownloadInterval: -10 is taken as 0: every request "
                                      "counts as a download, repeated Range requests included"),
        ("RedisDB: 16", "RedisDB: 16 is above 15: a Redis server has 16 databases unless its "
                        "'databases' setting is raised, and refuses SELECT 16 otherwise"),
        ("RedisSentinels: [{Host: '10.0.0.1:26379'}]",
         "RedisSentinels are not used without RedisSentinelMasterName: Redis is reached at "
         "RedisAddress '127.0.0.1:6379'"),
        ("RedisSentinelMasterName: main",
         "RedisSentinelMasterName 'main' is not used without RedisSentinels: Redis is reached at "
         "RedisAddress '127.0.0.1:6379'"),
        ("Hashes: {SHA256: no}", HASHES_OFF),
        ("WeightDistributionRange: 0.5",
         "WeightDistributionRange: 0.5 is below 1: not even the closest mirror is within the "
         "range, so no mirror gets the nearby bonus (1.5 by default)"),
        ("AllowOutdatedFiles: [{Prefix: /dists/, Minutes: 5}, {Prefix: /dists/sid/, Minutes: 60}]",
         "AllowOutdatedFiles: the rule for '/dists/sid/' never applies: the earlier rule for "
         "'/dists/' matches first"),
        ("Fallbacks: [{URL: fb.example.org, CountryCode: uk}]",
         "Fallbacks.CountryCode 'UK' is not a country code GeoIP gives: the United Kingdom is "
         "GB"),
        ("RPCListenAddress: ':3390'",
         "RPCListenAddress ':3390' accepts connections from other hosts and RPCPassword is "
         "empty: anyone who reaches it can control the daemon"),
        ("RPCListenAddress: '192.0.2.1:3390'",
         "RPCListenAddress '192.0.2.1:3390' accepts connections from other hosts and RPCPassword "
         "is empty: anyone who reaches it can control the daemon"),
        ("RPCListenAddress: ':3390'\nRPCPassword: secret",
         "RPCListenAddress ':3390' accepts connections from other hosts without TLS: the "
         "password crosses the network in clear (set RPCTLSCertificate, RPCTLSKey and "
         "RPCTLSClientCA, or listen on loopback)"),
    ],
)
def test_values_that_work_but_perhaps_not_as_meant_are_warnings(text: str, warning: str) -> None:
    assert warnings_at(text + "\n") == [(warning, 2)]


@pytest.mark.parametrize(
    "text",
    [
        "ScanInterval: 1\nCheckInterval: 1\nSameDownloadInterval: 0\nRedisDB: 15",
        "RepositoryScanInterval: 0\nMaxLinkHeaders: 0\nWeightDistributionRange: 1",
        "Hashes: {SHA1: yes, SHA256: no}",
        "RedisSentinelMasterName: m\nRedisSentinels: [{Host: '10.0.0.1:26379'}]",
        "AllowOutdatedFiles: [{Prefix: /dists/sid/, Minutes: 60}, {Prefix: /dists/, Minutes: 5}]",
        "RPCListenAddress: '[::1]:3390'",
        "RPCListenAddress: 'localhost:3390'",
        "RPCListenAddress: 'unix:/run/mirrorbits.sock'",
        "RPCListenAddress: ':3390'\nRPCPassword: secret\nRPCTLSCertificate: /etc/m/cert.pem\n"
        "RPCTLSClientCA: /etc/m/clients.pem",
        "Fallbacks: [{URL: 'fb.example.org:8080/pub', CountryCode: 'fr de', ContinentCode: eu}]",
        "Fallbacks: [{URL: 'https://fb.example.org/fall back/'}]",  # sent percent-encoded
        "TrustedProxies: [10.0.0.0/8, 192.0.2.7]",
    ],
)
def test_sensible_values_give_no_warning(text: str) -> None:
    assert warnings_of(text + "\n") == []


@pytest.mark.parametrize(
    "text",
    [
        'OutputMode: "line one\\nline two"',
        "Fallbacks: [{URL: \"ftp://x/\\r\\n\"}]",
        "Fallbacks: [{URL: fb.example.org, CountryCode: \"F\\nR\"}]",
        "OutputMode: " + "x" * 5000,
        "\"Bad\\nKey\": 1\nWeightDistributionRange: 0",
    ],
)
def test_messages_are_one_short_line_whatever_the_value(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(REPO + text + "\n", "my.conf")
    for message in [str(info.value), *info.value.warnings]:
        assert "\n" not in message and "\r" not in message, message
        assert len(message) < 300, message


def test_file_system_warnings(tmp_path: Path) -> None:
    config_path = tmp_path / "mirrorbits.conf"

    def load(**paths: Path) -> list[str]:
        """The warnings for *paths*, one key a line in that order, without their line."""
        lines = "".join(f"{key}: {path}\n" for key, path in paths.items())
        config_path.write_text(lines)
        warnings = [placed(warning, str(config_path)) for warning in
                    load_config(str(config_path))[1]]
        assert [line for _, line in warnings] == [
            list(paths).index(warning.split()[0]) + 1 for warning, _ in warnings]
        return [warning for warning, _ in warnings]

    repo, geo, logs, templates = (tmp_path / name for name in ("repo", "geo", "logs", "tpl"))
    # Not the GeoIP directory: the GeoIP loader says what it cannot load, once per change.
    assert load(Repository=repo, GeoipDatabasePath=geo, LogDir=logs, Templates=templates) == [
        f"Repository '{repo}' does not exist: nothing can be served or scanned from it until "
        "it can be read",
        f"LogDir '{logs}' does not exist: no download log is written until it can be",
        f"Templates '{templates}' does not exist: the shipped templates are used",
    ]
    repo.write_text("a file")
    for directory in (geo, logs, templates):
        directory.mkdir()
    (templates / "mirrorlist.html").write_text("a Go template of the reference")
    assert load(Repository=repo, GeoipDatabasePath=geo, LogDir=logs, Templates=templates) == [
        f"Repository '{repo}' is not a directory: nothing can be served or scanned from it "
        "until it can be read",
        f"Templates '{templates}' holds none of base.xhtml, mirrorlist.xhtml, mirrorstats.xhtml: "
        "the shipped templates are used",
    ]
    repo.unlink()
    repo.mkdir()
    (templates / "base.xhtml").write_text("<html/>")
    assert load(Repository=repo, GeoipDatabasePath=geo, LogDir=logs, Templates=templates) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_a_log_dir_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o555)
    config_path = tmp_path / "mirrorbits.conf"
    config_path.write_text(f"Repository: {tmp_path}\nLogDir: {logs}\n")
    assert load_config(str(config_path))[1] == [
        f"LogDir '{logs}' is not writable by this process: no download log is written until "
        f"it can be (line 2 in {config_path})"
    ]


# --- YAML syntax --------------------------------------------------------------------------


def test_invalid_yaml_message_is_one_line_ending_with_the_source() -> None:
    message = error_of(REPO + "Gzip: [yes\n")
    assert "\n" not in message
    assert message.startswith("yaml: line ")
    assert message.endswith(" in test.conf")


def test_an_unclosed_bracket_or_quote_is_located_where_it_opens(tmp_path: Path) -> None:
    # The parser gives up where the file ends: "line 3" of a file of two lines.
    path = tmp_path / "m.conf"
    path.write_text(REPO + "MaxLinkHeaders: [oops\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == (
        "yaml: line 2, column 17: while parsing a flow sequence (unfinished at line 3, "
        f"column 1: expected ',' or ']', but got '<stream end>') in {path}")
    path.write_text(REPO + 'RPCPassword: "abc\nCheckInterval: 2\n')
    with pytest.raises(ConfigError, match=r"^yaml: line 2, column 14: while scanning a quoted"):
        load_config(str(path))


def test_yaml_merge_keys() -> None:
    config, warnings = parse_config(
        "common: &c {SHA1: yes, MD5: yes}\n" + REPO + "Hashes: {<<: *c, MD5: no}\n"
    )
    assert config.hashes == Hashes(sha1=True, sha256=True, md5=False)
    assert warnings == ["unknown configuration key 'common' (line 1 in <string>)"]


# --- files --------------------------------------------------------------------------------


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mirrorbits.conf"
    path.write_text(CONFORMANCE_CONFIG + "Extra: 1\n", encoding="utf-8")
    config, warnings = load_config(str(path))
    assert config == parse(CONFORMANCE_CONFIG)
    assert [placed(warning, str(path)) for warning in warnings] == [
        ("unknown configuration key 'Extra'", 43),
        # The directories it names do not exist here.
        ("Repository '/ROOT/repo' does not exist: nothing can be served or scanned from it "
         "until it can be read", 1),
        ("LogDir '/ROOT/logs' does not exist: no download log is written until it can be", 3),
        ("Templates '/path/to/reference/templates' does not exist: the shipped templates are "
         "used", 2),
    ]


def test_load_config_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.conf"
    path.write_bytes(b"\xef\xbb\xbf" + REPO.encode())
    assert load_config(str(path))[0].repository == "/srv/repo"


def test_unreadable_file_raises_instead_of_exiting(tmp_path: Path) -> None:
    missing = tmp_path / "gone.conf"
    with pytest.raises(ConfigError) as info:
        load_config(str(missing))
    message = str(info.value)
    assert message.startswith("Configuration could not be read from ")
    assert str(missing) in message and "No such file or directory" in message
    with pytest.raises(ConfigError, match="Is a directory"):
        load_config(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_file_without_permission(tmp_path: Path) -> None:
    path = tmp_path / "secret.conf"
    path.write_text(REPO)
    path.chmod(0)
    with pytest.raises(ConfigError, match="Permission denied"):
        load_config(str(path))


def test_invalid_yaml_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.conf"
    path.write_text(REPO + "Fallbacks:\n  - URL: a\n   CountryCode: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert re.fullmatch(rf"yaml: line 4, column \d+: .+ in {re.escape(str(path))}", str(info.value))


def test_invalid_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conf"
    path.write_bytes(b"Repository: /srv/d\xe9p\xf4t\n")
    with pytest.raises(ConfigError, match=f"invalid UTF-8 at byte 18 in {re.escape(str(path))}"):
        load_config(str(path))


def test_oversized_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "MAX_CONFIG_BYTES", 10)
    path = tmp_path / "big.conf"
    path.write_text(REPO)
    with pytest.raises(ConfigError, match="larger than 10 bytes"):
        load_config(str(path))


def test_default_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_CONFIG_PATH == "/etc/mirrorbits.conf"
    present = tmp_path / "mirrorbits.conf"
    present.write_text(REPO)
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", str(present))
    assert default_config_path() == str(present)
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent.conf"))
    assert default_config_path() is None


# --- the shipped example ------------------------------------------------------------------


def _uncomment_settings(text: str) -> str:
    """Turn every ``#Key: value`` line into a setting; prose (``# ...``) stays a comment."""
    return re.sub(r"(?m)^#(?=[A-Z])", "", text)


def test_example_config_as_shipped_has_no_repository() -> None:
    line = EXAMPLE_CONFIG.splitlines().index("#Repository: /srv/repo") + 1
    assert error_of(EXAMPLE_CONFIG) == (
        "Path to local repository not configured (see mirrorbits.conf) "
        f"(not set in test.conf: line {line} is commented out, remove its '#')")


def test_example_config_shows_the_defaults() -> None:
    text = _uncomment_settings(EXAMPLE_CONFIG)
    config = parse(text)
    assert config == Config(repository="/srv/repo")
    keys = re.findall(r"(?m)^([A-Za-z]+):", text)
    assert len(keys) == len(set(keys)) == len(attrs.fields(Config))


def test_example_config_examples_parse() -> None:
    blocks = re.findall(r"(?m)((?:^#   .*\n)+)", EXAMPLE_CONFIG)
    assert len(blocks) == 5
    for block in blocks:
        parse(REPO + re.sub(r"(?m)^#   ", "", block))


def test_allow_redirect_hosts() -> None:
    config = parse(REPO + "AllowRedirectHosts: [cdn.example.org, '*.example.net', '::1']\n")
    assert config.allow_redirect_hosts == ("cdn.example.org", "*.example.net", "::1")
    assert parse(REPO).allow_redirect_hosts == ()


@pytest.mark.parametrize("bad", ["http://cdn.example.org", "cdn.example.org:8080", "''",
                                 "'a..b'", "'*example.org'", "-bad.example"])
def test_bad_redirect_host_is_named(bad: str) -> None:
    message = error_at(REPO + f"AllowRedirectHosts: [ok.example, {bad}]\n")
    shown = bad.strip("'")
    assert message == (f"AllowRedirectHosts: '{shown}' is not a host name, *.domain, an IP "
                       "address or *", 2)


def test_max_scan_entries() -> None:
    assert parse(REPO).max_scan_entries == 5_000_000
    assert parse(REPO + "MaxScanEntries: 1000\n").max_scan_entries == 1000
    assert error_at(REPO + "MaxScanEntries: 0\n") == (
        "MaxScanEntries must be >= 1 (entries of one mirror listing), not 0", 2)


def test_repository_scan_max_remove() -> None:
    assert parse(REPO).repository_scan_max_remove == RemovalLimit(percent=10.0)
    assert parse(REPO + "RepositoryScanMaxRemove: 500\n").repository_scan_max_remove == (
        RemovalLimit(count=500))
    assert parse(REPO + "RepositoryScanMaxRemove: 2.5%\n").repository_scan_max_remove == (
        RemovalLimit(percent=2.5))
    assert parse(REPO + "RepositoryScanMaxRemove: '100 %'\n").repository_scan_max_remove == (
        RemovalLimit(percent=100.0))
    expected = ("a number of files >= 0 or a share of the indexed files (10%, at most 100%)")
    for bad, shown in (("-1", "'-1'"), ("150%", "'150%'"), ("ten", "'ten'"), ("1.5", "'1.5'"),
                       ("[10]", "a list")):
        assert error_at(REPO + f"RepositoryScanMaxRemove: {bad}\n") == (
            f"RepositoryScanMaxRemove must be {expected}, not {shown}", 2)


def test_a_tilde_in_a_missing_directory_is_explained(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``~/repo`` is taken from the start directory, as in the reference: the warning says
    why it is not found."""
    monkeypatch.chdir(tmp_path)
    config_path = tmp_path / "mirrorbits.conf"
    config_path.write_text("Repository: ~/repo\n")
    assert load_config(str(config_path))[1] == [
        f"Repository '{tmp_path}/~/repo' does not exist (a ~ is not expanded: write the whole "
        "path): nothing can be served or scanned from it until it can be read (line 1 in "
        f"{config_path})"]


def test_stats_spool_dir_is_made_at_need_and_warned_about_when_unusable(
        tmp_path: Path) -> None:
    config_path = tmp_path / "mirrorbits.conf"

    def load(directory: Path) -> tuple[str, list[str]]:
        config_path.write_text(f"Repository: {tmp_path}\nStatsSpoolDir: {directory}\n")
        config, warnings = load_config(str(config_path))
        return config.stats_spool_dir, warnings

    missing = tmp_path / "state" / "spool"  # made, with its parent, at the first stop
    assert load(missing) == (str(missing), [])
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    lost = ("downloads counted during a Redis outage are lost if the daemon stops before "
            f"Redis is back (line 2 in {config_path})")
    # A long path is cut short in the message (the suite's temporary paths can be long).
    assert load(taken) == (str(taken), [f"StatsSpoolDir {shown_value(str(taken))} is not a "
                                        f"directory: {lost}"])
    assert load(taken / "spool")[1] == [
        f"StatsSpoolDir {shown_value(str(taken / 'spool'))} cannot be made ('{taken}' is not a "
        f"directory): {lost}"]
