"""The settings that are ours: ``StatsRetention``, ``RsyncOptions``, ``MirmonExportFile``
(parsed, checked, one line per refusal)."""

from __future__ import annotations

import pytest

from mirrorbits.config import ConfigError, StatsRetention, parse_config
from mirrorbits.scan.rsync_options import option_problem, options_for

REPO = "Repository: /srv/repo\n"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(REPO + text, "test.conf")
    return str(info.value)


def error_at(text: str) -> tuple[str, int]:
    """The error of ``Repository`` then *text*: what it says, and the line it names."""
    message, _, where = error_of(text).rpartition(" (line ")
    line, _, source = where.removesuffix(")").partition(" in ")
    assert source == "test.conf", where
    return message, int(line)


def test_stats_retention() -> None:
    config, warnings = parse_config(REPO + "StatsRetention: {Days: 30, Months: 12}\n")
    assert (config.stats_retention, warnings) == (StatsRetention(days=30, months=12), [])
    assert parse_config(REPO)[0].stats_retention == StatsRetention(0, 0)  # forever
    assert parse_config(REPO + "StatsRetention: {Months: 6}\n")[0].stats_retention == (
        StatsRetention(0, 6))
    assert error_at("StatsRetention: {Days: -1}\n") == (
        "StatsRetention.Days must be >= 0 (0 keeps the counters forever), not -1", 2)
    assert error_at("StatsRetention:\n  Days: 1\n  Months: -2\n") == (
        "StatsRetention.Months must be >= 0 (0 keeps the counters forever), not -2", 4)
    assert error_of("StatsRetention: 30\n") == (
        "StatsRetention must be a mapping of names to values, not '30' (line 2 in test.conf)")
    assert parse_config(REPO + "Days: 3\n", "test.conf")[1] == [
        "unknown configuration key 'Days'; did you mean to indent it under 'StatsRetention'? "
        "(line 2 in test.conf)"]


def test_rsync_options() -> None:
    text = 'RsyncOptions:\n  "*": [--copy-unsafe-links, --timeout=120]\n  old: []\n  42: [-L]\n'
    config, warnings = parse_config(REPO + text)
    assert warnings == []
    assert config.rsync_options == (("*", ("--copy-unsafe-links", "--timeout=120")),
                                     ("old", ()), ("42", ("-L",)))
    assert options_for(config.rsync_options, "new") == ("--copy-unsafe-links", "--timeout=120")
    assert options_for(config.rsync_options, "old") == ()
    assert options_for(config.rsync_options, "42") == ("-L",)
    assert options_for((), "any") == ()


@pytest.mark.parametrize(("option", "problem"), [
    ("-e", "only options that change the listing are allowed"),
    ("--rsh=ssh", "only options that change the listing are allowed"),
    ("--files-from=/etc/passwd", "only options that change the listing are allowed"),
    ("--exclude-from=/etc/shadow", "only options that change the listing are allowed"),
    ("--rsync-path=rm -rf /", "only options that change the listing are allowed"),
    ("--write-batch=x", "only options that change the listing are allowed"),
    ("--log-file=/tmp/x", "only options that change the listing are allowed"),
    ("/tmp/destination", "only options that change the listing are allowed"),
    ("--exclude", "it takes a value: write --exclude=VALUE as one item"),
    ("--timeout=soon", "'soon' is not a valid value for --timeout"),
    ("--bwlimit=", "'' is not a valid value for --bwlimit"),
    ("--copy-links\n--rsh=x", "it contains a control character"),
])
def test_refused_rsync_options(option: str, problem: str) -> None:
    assert option_problem(option).startswith(problem)
    message = error_of(f"RsyncOptions: {{mirror: [{option!r}]}}\n".replace("'", '"'))
    assert message.startswith(f"RsyncOptions.mirror: {option!r} is refused: {problem}")
    assert "\n" not in message


def test_allowed_rsync_options() -> None:
    for option in ("--copy-unsafe-links", "-L", "--safe-links", "-4", "--exclude=*.tmp",
                   "--include=/pub/**", "--timeout=120", "--contimeout=5", "--bwlimit=1.5M",
                   "--address=127.0.0.1"):
        assert option_problem(option) == "", option
    assert error_of("RsyncOptions: {m: --copy-links}\n") == (
        "RsyncOptions.m must be a list ([a, b] on one line, or '- ' before each entry on its "
        "own line), not '--copy-links' (line 2 in test.conf)")


def test_mirmon_export_file() -> None:
    config = parse_config(REPO + "MirmonExportFile: mirmon/mirrors.list\n")[0]
    assert config.mirmon_export_file.endswith("/mirmon/mirrors.list")
    assert config.mirmon_export_file.startswith("/")
    assert parse_config(REPO)[0].mirmon_export_file == ""
    assert error_at("MirmonExportFile: /var/lib/mirmon/\n") == (
        "MirmonExportFile '/var/lib/mirmon/' names a directory: it must name the file to write",
        2)
