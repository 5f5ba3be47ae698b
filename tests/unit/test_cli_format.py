"""What ``mirrorbits-ctl`` prints, compared with the reference's recorded outputs.

The reference lists mirrors with equal ``stateSince`` in arbitrary order; ours sorts them by
name, so the expected tables below are the reference's lines in that order.
"""

from __future__ import annotations

import io
from datetime import date

import attrs
import pytest

from mirrorbits.ctl import flags as f
from mirrorbits.ctl.command_line import parse_command_line, target_flags, usage_text
from mirrorbits.ctl.exits import Exit
from mirrorbits.ctl.output import (
    ListOptions,
    ResolveError,
    add_report,
    down_reason,
    list_table,
    logs_text,
    resolve_match,
    version_block,
)
from mirrorbits.ctl.progress import StatusLine, progress_text
from mirrorbits.ctl.prompt import answer_means_yes, confirm
from mirrorbits.ctl.reports import DateRangeError, mirmon_text, stats_days, stats_mirror_text
from mirrorbits.ctl.table import COMMANDS
from mirrorbits.model import Mirror

SINCE = 1795571682  # Wed, 25 Nov 2026 01:54:42 UTC


def _mirror(name: str, http: str, countries: str, continent: str, **extra: object) -> Mirror:
    values: dict[str, object] = {
        "enabled": True, "http_up": True, "https_up": not http.startswith("http://"),
        "state_since": SINCE,
    }
    values.update(extra)
    return Mirror(
        id=len(name), name=name, http_url=http, rsync_url=f"rsync://127.0.0.1:8931/{name}/",
        country_codes=countries, continent_code=continent, **values,  # type: ignore[arg-type]
    )


MIRRORS = [
    _mirror("reykjavik", "http://127.0.0.38/", "IS", "EU", http_up=False, state_since=None,
            http_down_reason="Unreachable"),
    _mirror("madrid", "127.0.0.31/", "ES", "EU"),
    _mirror("warsaw", "http://127.0.0.35/", "PL CZ SK", "EU", score=-30),
    _mirror("toronto", "https://127.0.0.33/", "CA", "NA", score=25, http_up=False),
    _mirror("oslo", "http://127.0.0.39/", "NO", "EU", enabled=False, http_up=False,
            state_since=None),
    _mirror("valencia", "127.0.0.32/pub/", "ES", "EU", https_up=False,
            https_down_reason="Got status code 429"),
    _mirror("singapore", "http://127.0.0.34/", "SG", "AS"),
    _mirror("johannesburg", "http://127.0.0.36/", "ZA BW LS", "AF"),
    _mirror("saopaulo", "http://127.0.0.37/", "BR", "SA"),
]
UP = "(Wed, 25 Nov 2026 01:54:42 UTC)"
ZERO = "(never)"  # the reference: (Mon, 01 Jan 0001 00:00:00 UTC)


def test_list_default() -> None:
    assert list_table(MIRRORS, ListOptions()) == (
        "Identifier \tSTATE\t\tSINCE\n"
        f"johannesburg \tup \t\t{UP}\nmadrid \t\tup \t\t{UP}\nsaopaulo \tup \t\t{UP}\n"
        f"singapore \tup \t\t{UP}\ntoronto \tup \t\t{UP}\nvalencia \tup/down \t{UP}\n"
        f"warsaw \t\tup \t\t{UP}\noslo \t\tdisabled \t{ZERO}\nreykjavik \tdown \t\t{ZERO}\n"
    )


def test_list_all_columns() -> None:
    options = ListOptions(http=True, rsync=True, ftp=True, location=True, score=True)
    lines = list_table(MIRRORS, options).splitlines(keepends=True)
    assert lines[0] == (
        "Identifier \tSCORE\tHTTP \t\t\tRSYNC \t\t\t\t\tFTP \tLOCATION \tSTATE\t\tSINCE\n"
    )
    assert lines[2] == (
        "madrid \t\t0 \t127.0.0.31/ \t\trsync://127.0.0.1:8931/madrid/ \t\t \tES (EU) "
        f"\tup \t\t{UP}\n"
    )
    assert lines[7] == (
        "warsaw \t\t-30 \thttp://127.0.0.35/ \trsync://127.0.0.1:8931/warsaw/ \t\t \tPL (EU) "
        f"\tup \t\t{UP}\n"
    )
    assert lines[9] == (
        "reykjavik \t0 \thttp://127.0.0.38/ \trsync://127.0.0.1:8931/reykjavik/ \t \tIS (EU) "
        f"\tdown \t\t{ZERO}\n"
    )


def test_list_without_state() -> None:
    assert list_table(MIRRORS, ListOptions(state=False)) == (
        "Identifier \njohannesburg \nmadrid \nsaopaulo \nsingapore \ntoronto \nvalencia \n"
        "warsaw \noslo \nreykjavik \n"
    )
    text = list_table(MIRRORS, ListOptions(location=True, score=True, state=False))
    assert text.startswith(
        "Identifier \tSCORE\tLOCATION \njohannesburg \t0 \tZA (AF) \nmadrid \t\t0 \tES (EU) \n"
    )
    assert "warsaw \t\t-30 \tPL (EU) \n" in text


def test_list_filters() -> None:
    assert list_table(MIRRORS, ListOptions(down=True)) == (
        f"Identifier \tSTATE\tSINCE\t\t\t\tREASON\n"
        f"valencia \tup/down {UP}\tGot status code 429\n"
        f"reykjavik \tdown \t{ZERO}\t\t\t\tUnreachable\n"
    )
    assert list_table(MIRRORS, ListOptions(down=True, state=False)) == (
        "Identifier \nvalencia \nreykjavik \n"
    )
    assert list_table(MIRRORS, ListOptions(disabled=True)) == (
        f"Identifier \tSTATE\t\tSINCE\noslo \t\tdisabled \t{ZERO}\n"
    )
    enabled = list_table(MIRRORS, ListOptions(enabled=True))
    assert "oslo" not in enabled and enabled.endswith(f"reykjavik \tdown \t{ZERO}\n")


def test_down_reason_names_the_protocol_that_is_down() -> None:
    both = _mirror("both", "127.0.0.40/", "FR", "EU", http_up=False, https_up=False,
                   http_down_reason="Unreachable", https_down_reason="Not HTTPS")
    assert down_reason(both) == "Unreachable / Not HTTPS"
    same = attrs.evolve(both, https_down_reason="Unreachable")
    assert down_reason(same) == "Unreachable"
    # an https:// mirror's HTTP state is not its own
    tls = _mirror("tls", "https://127.0.0.41/", "FR", "EU", http_up=False, https_up=False,
                  http_down_reason="stale", https_down_reason="Got status code 503")
    assert down_reason(tls) == "Got status code 503"
    assert down_reason(MIRRORS[1]) == ""  # up: no reason
    never_checked = _mirror("new", "http://127.0.0.42/", "FR", "EU", http_up=False,
                            last_successful_sync=SINCE)
    assert down_reason(never_checked) == ""  # its first check is to come
    # enabled without a scan that worked: no file to check, so never checked
    never_scanned = attrs.evolve(never_checked, last_successful_sync=None)
    assert down_reason(never_scanned) == "Not scanned yet (mirrorbits-ctl logs new says why)"


def test_list_sorts_newest_state_change_first() -> None:
    older = attrs.evolve(MIRRORS[1], name="aaa", state_since=SINCE - 10)
    newer = attrs.evolve(MIRRORS[1], name="zzz", state_since=SINCE + 10)
    text = list_table([older, newer, MIRRORS[1]], ListOptions(state=False))
    assert text == "Identifier \nzzz \nmadrid \naaa \n"


def test_list_location_without_country_shows_placeholder() -> None:
    mirror = Mirror(name="x", continent_code="EU", enabled=True)
    assert "\t/ (EU) " in list_table([mirror], ListOptions(location=True))


def test_add_report_like_reference() -> None:
    reply = {"latitude": 40.4168, "longitude": -3.7038, "continent": "EU", "country": "Spain",
             "as_name": "Madrid Mirror Net", "as_num": 65101}
    assert add_report("madrid", [], reply) == (
        "Mirror location:\nLatitude:  40.4168\nLongitude: -3.7038\nContinent: EU\n"
        "Country:   Spain\nASN:       Madrid Mirror Net (65101)\n\n"
        "Mirror 'madrid' added successfully\nEnable this mirror using\n"
        "  $ mirrorbits-ctl enable madrid\n"
    )
    valencia = dict(reply, as_name="", as_num=0)
    assert "ASN:        (0)\n" in add_report("valencia", [], valencia)


def test_the_enable_hint_names_the_daemon_it_was_added_to() -> None:
    """Run as printed, the hint reaches the same daemon (not the default port's)."""
    def hint(*words: str) -> str:
        invocation = parse_command_line([*words, "add", "-http", "http://h/", "m"], COMMANDS)
        return add_report("m", [], None, target_flags(invocation)).splitlines()[-1]

    assert hint() == "  $ mirrorbits-ctl enable m"
    assert hint("-p", "13390") == "  $ mirrorbits-ctl -p 13390 enable m"
    assert hint("-h", "10.0.0.1", "-P", "secret") == "  $ mirrorbits-ctl -h 10.0.0.1 enable m"
    assert hint("-h", "unix:/run/mb ctl.sock") == (
        "  $ mirrorbits-ctl -h 'unix:/run/mb ctl.sock' enable m")


def test_add_report_with_warnings_and_no_location() -> None:
    text = add_report("m", ["Warning: one", "Warning: two"], None)
    assert text.startswith("Warning: one\nWarning: two\n\nMirror 'm' added successfully\n")


def test_version_block() -> None:
    fields = {"Version": "v0.1.0", "Build": "python", "PythonVersion": "3.11.9",
              "OperatingSystem": "linux", "Architecture": "x86_64"}
    assert version_block("Server", fields) == (
        "Server:\n Version:          v0.1.0\n Build:            python\n"
        " Python version:   3.11.9\n Operating System: linux\n Architecture:     x86_64\n"
    )


def test_logs_text() -> None:
    assert logs_text("oslo", []) == "No logs for oslo\n"
    assert logs_text("oslo", ["2026-11-25 01:54:40 UTC: Mirror added"]) == (
        "Printing logs for oslo:\n2026-11-25 01:54:40 UTC: Mirror added\n"
    )


def test_resolve_exact_name_wins() -> None:
    assert resolve_match("mirror", [(2, "mirror2"), (1, "mirror")]) == (1, "mirror")
    assert resolve_match("MIRROR", [(2, "mirror2"), (1, "mirror")]) == (1, "mirror")
    assert resolve_match("mad", [(1, "madrid")]) == (1, "madrid")
    with pytest.raises(ResolveError, match=r"^No match for 'lima'$"):
        resolve_match("lima", [])
    with pytest.raises(ResolveError) as caught:
        resolve_match("o", [(4, "singapore"), (9, "oslo")])
    assert str(caught.value) == "Multiple match:\n  singapore\n  oslo"


def test_mirmon_export_like_reference() -> None:
    madrid = Mirror(name="madrid", http_url="127.0.0.31/", country_codes="ES",
                    rsync_url="rsync://127.0.0.1:8931/madrid/",
                    admin_email="mirrors@madrid.example.es", enabled=True)
    toronto = Mirror(name="toronto", http_url="https://127.0.0.33/", country_codes="CA",
                     rsync_url="rsync://127.0.0.1:8931/toronto/")
    jhb = Mirror(name="johannesburg", http_url="http://127.0.0.36/", country_codes="ZA BW LS",
                 rsync_url="rsync://127.0.0.1:8931/johannesburg/",
                 admin_email="jhb@example.org.za", enabled=True)
    options = {"rsync": True, "http": True, "ftp": True, "disabled": True}
    assert mirmon_text([madrid, toronto, jhb], options) == (
        "ES\trsync://127.0.0.1:8931/madrid/\t\tmirrors@madrid.example.es\n"
        "ES\thttp://127.0.0.31/\t\t\tmirrors@madrid.example.es\n"
        "ES\thttps://127.0.0.31/\t\t\tmirrors@madrid.example.es\n"
        "CA\trsync://127.0.0.1:8931/toronto/\t\t\nCA\thttps://127.0.0.33/\t\t\t\n"
        "ZA\trsync://127.0.0.1:8931/johannesburg/\tjhb@example.org.za\n"
        "ZA\thttp://127.0.0.36/\t\t\tjhb@example.org.za\n"
    )
    no_disabled = dict(options, disabled=False, rsync=False)
    assert mirmon_text([madrid, toronto], no_disabled) == (
        "ES\thttp://127.0.0.31/\tmirrors@madrid.example.es\n"
        "ES\thttps://127.0.0.31/\tmirrors@madrid.example.es\n"
    )
    assert mirmon_text([Mirror(http_url="http://a/", enabled=True)], options) == "--\thttp://a/\t\n"


def test_stats_mirror_like_reference() -> None:
    toronto = MIRRORS[3]
    assert stats_mirror_text(toronto, 7, 2543300, human=True) == (
        "Identifier:\t\ttoronto\nStatus:\t\t\tup\nDownload requests:\t7\n"
        "Bytes transferred:\t2.4 MiB\n"
    )
    assert stats_mirror_text(MIRRORS[4], 0, 0, human=False).endswith(
        "Status:\t\t\tdisabled\nDownload requests:\t0\nBytes transferred:\t0\n"
    )


def test_parse_day() -> None:
    assert f.parse_day("2023-1-5") == date(2023, 1, 5)
    assert f.parse_day("2023-01-05") == date(2023, 1, 5)
    for text, reason in (
        ("2023-02-30", "day is out of range for month"),
        ("2026-13-01", "month must be in 1..12"),
        ("yesterday", "expected a date as YYYY-MM-DD"),
        ("26-1-1", "expected a date as YYYY-MM-DD"),
        ("", "expected a date as YYYY-MM-DD"),
    ):
        with pytest.raises(ValueError, match=f"^{reason}$"):
            f.parse_day(text)


def test_stats_days_include_the_end_day() -> None:
    today = date(2026, 11, 25)
    assert stats_days(None, None, today) == (today, date(2026, 11, 26))
    assert stats_days(date(2026, 11, 1), None, today) == (date(2026, 11, 1), date(2026, 11, 26))
    assert stats_days(date(2026, 1, 1), date(2026, 1, 31), today) == (date(2026, 1, 1),
                                                                     date(2026, 2, 1))
    assert stats_days(date(2026, 12, 31), date(2026, 12, 31), today) == (date(2026, 12, 31),
                                                                        date(2027, 1, 1))
    with pytest.raises(DateRangeError, match=r"^-start-date 2026-12-10 is after -end-date "
                                             r"2026-12-05$"):
        stats_days(date(2026, 12, 10), date(2026, 12, 5), today)
    with pytest.raises(DateRangeError, match=r"is after today \(2026-11-25\)$"):
        stats_days(date(2026, 12, 10), None, today)
    with pytest.raises(DateRangeError, match=r"^-end-date 2026-01-01 is before today"):
        stats_days(None, date(2026, 1, 1), today)
    with pytest.raises(DateRangeError, match="out of range"):
        stats_days(date(2026, 1, 1), date.max, today)


def test_go_style_flags() -> None:
    flags = f.FlagSet()
    flags.add("state", f.BOOL, True, "Print the state")
    flags.add("score", f.INT, 0, "Score")
    flags.add("http", f.STRING, "", "HTTP `URL`")
    values, rest = flags.parse(["--state=false", "-score", "-30", "-http=x://y", "name", "-x"])
    assert values == {"state": False, "score": -30, "http": "x://y"}
    assert rest == ["name", "-x"]
    assert flags.parse(["-state", "--", "-score"]) == ({"state": True, "score": 0, "http": ""},
                                                        ["-score"])
    with pytest.raises(f.FlagError, match=r"^flag provided but not defined: -nope$"):
        flags.parse(["-nope"])
    with pytest.raises(f.FlagError, match=r'^invalid value "abc" for flag -score: parse error$'):
        flags.parse(["-score", "abc"])
    with pytest.raises(f.FlagError, match=r"^flag needs an argument: -http$"):
        flags.parse(["-http"])
    with pytest.raises(f.FlagError, match=r'^invalid boolean value "maybe" for -state'):
        flags.parse(["-state=maybe"])
    with pytest.raises(f.HelpRequested):
        flags.parse(["-help"])
    assert flags.defaults() == (
        "  -http URL\n    \tHTTP URL\n  -score int\n    \tScore\n"
        "  -state\n    \tPrint the state (default true)\n"
    )


def test_export_usage_matches_reference_wording() -> None:
    with pytest.raises(Exit) as caught:
        parse_command_line(["-P", "x", "export", "csv"], COMMANDS)
    assert caught.value.code == 2
    assert caught.value.stderr == (
        "Unsupported format\n\nUsage: mirrorbits-ctl export [format]\n\n"
        "Export the mirror database.\n\nAvailable formats: mirmon\n\n"
        "  -disabled\n    \tExport disabled mirrors (default true)\n"
        "  -ftp\n    \tExport ftp URLs (default true)\n"
        "  -http\n    \tExport http URLs (default true)\n"
        "  -rsync\n    \tExport rsync URLs (default true)\n"
    )


def test_command_line_parsing() -> None:
    invocation = parse_command_line(
        ["-h", "unix:/run/m.sock", "-P", "pw", "LIST", "-score", "-state=false"], COMMANDS
    )
    assert (invocation.host, invocation.port, invocation.password) == ("unix:/run/m.sock", 3390,
                                                                        "pw")
    assert invocation.command.name == "list"
    assert invocation.options["score"] is True and invocation.options["state"] is False


@pytest.mark.parametrize(
    ("argv", "code", "stderr_start"),
    [
        ([], 2, "Usage: mirrorbits-ctl [OPTIONS] COMMAND"),
        (["frobnicate"], 2, "Error: Command not found: frobnicate\nUsage:"),
        (["-x", "list"], 2, "flag provided but not defined: -x\n"),
        (["show"], 2, "Error: show takes 1 argument, none given\n\n"
                      "Usage: mirrorbits-ctl show IDENTIFIER\n\nPrint a mirror configuration"),
        (["list", "extra"], 2, "Error: list takes 0 arguments, 1 given: extra\n\n"
                               "Usage: mirrorbits-ctl list [OPTIONS]"),
        (["add", "-http", "http://h/", "my", "mirror"], 2,
         "Error: add takes 1 argument, 2 given: my mirror\n\nUsage: mirrorbits-ctl add"),
        (["logs", "-l", "x", "m"], 2, 'invalid value "x" for flag -l: parse error\n'),
        (["logs", "m", "-l", "x"], 2, 'invalid value "x" for flag -l: parse error\n'),
        (["-p", "abc", "list"], 2, 'invalid value "abc" for flag -p: parse error\n'),
        (["list", "-p", "70000"], 2,
         'invalid value "70000" for flag -p: not a port number (1-65535)\n'),
        (["list", "-bogus"], 2, "flag provided but not defined: -bogus\n"),
        (["show", "m", "-bogus"], 2, "flag provided but not defined: -bogus\n"),
        (["logs", "-l", "9223372036854775808", "m"], 2,
         'invalid value "9223372036854775808" for flag -l: value out of range\n'),
        (["stats", "mirror", "m", "-start-date", "2026-13-01"], 2,
         'invalid value "2026-13-01" for flag -start-date: month must be in 1..12\n'),
        (["stats", "-start-date", "yesterday", "file", "."], 2,
         'invalid value "yesterday" for flag -start-date: expected a date as YYYY-MM-DD\n'),
        (["stats", "-start-date", "2026-1-5", "-end-date", "2026-1-4", "file", "."], 2,
         "-start-date 2026-01-05 is after -end-date 2026-01-04\n"),
        (["add", "a b"], 1, "The identifier cannot contain a space\n"),
        (["add", "m"], 1, "You *must* pass at least an HTTP URL\n"),
        (["add", "-http", "ftp://h/", "m"], 1, "The HTTP URL has an invalid scheme\n"),
        (["add", "-http", "h:port/", "m"], 1, "Can't parse HTTP URL\n"),
        (["add", "-http", "http://h/my dir/", "m"], 1,
         "Can't parse HTTP URL: write a space as %20 (http://h/my%20dir/)\n"),
        (["add", "-http", "http://my host/", "m"], 1, "Can't parse HTTP URL\n"),
        (["stats", "other", "x"], 2, "Error: stats counts a mirror or files"),
        (["add", "-http", "h/", "-rsync", "h::pub", "m"], 1,
         "The rsync URL must start with rsync:// (or rsyncs://), not 'h::pub': write it "
         "rsync://h/pub\n"),
    ],
)
def test_usage_errors_exit_non_zero(argv: list[str], code: int, stderr_start: str) -> None:
    with pytest.raises(Exit) as caught:
        parse_command_line(argv, COMMANDS)
    assert caught.value.code == code
    assert caught.value.stderr.startswith(stderr_start)
    assert caught.value.stdout == ""


def test_flag_errors_are_one_line() -> None:
    for argv in (["-x", "list"], ["list", "-p", "x"], ["stats", "-end-date", "x", "file", "."]):
        with pytest.raises(Exit) as caught:
            parse_command_line(argv, COMMANDS)
        assert caught.value.stderr.count("\n") == 1


def test_flags_after_the_arguments() -> None:
    invocation = parse_command_line(
        ["stats", "mirror", "m", "-start-date", "2026-12-01", "-h=false"], COMMANDS)
    assert invocation.args == ["mirror", "m"]
    assert invocation.options["start-date"] == date(2026, 12, 1)
    assert invocation.options["h"] is False
    invocation = parse_command_line(["remove", "m", "-f"], COMMANDS)
    assert invocation.args == ["m"] and invocation.options["f"] is True
    invocation = parse_command_line(["add", "m", "-http", "http://h/", "-score", "-3"], COMMANDS)
    assert invocation.args == ["m"]
    assert (invocation.options["http"], invocation.options["score"]) == ("http://h/", -3)
    # after "--" nothing is a flag
    invocation = parse_command_line(["stats", "file", "--", "-f"], COMMANDS)
    assert invocation.args == ["file", "-f"]


def test_global_flags_after_the_command() -> None:
    invocation = parse_command_line(["list", "-P", "secret", "-disabled", "-p", "3391"],
                                    COMMANDS)
    assert (invocation.password, invocation.port, invocation.host) == ("secret", 3391,
                                                                        "localhost")
    assert invocation.options == {**dict.fromkeys(
        ("http", "rsync", "ftp", "location", "score", "enabled", "down"), False),
        "state": True, "disabled": True}
    invocation = parse_command_line(["-P", "one", "show", "m", "-P", "two", "-a"], COMMANDS)
    assert (invocation.password, invocation.ask_password, invocation.args) == ("two", True,
                                                                               ["m"])
    # -h after the command keeps its reference meaning: help, or stats' human sizes
    with pytest.raises(Exit) as caught:
        parse_command_line(["list", "-h", "otherhost"], COMMANDS)
    assert caught.value.code == 0 and caught.value.stdout.startswith("Usage: mirrorbits-ctl list")
    invocation = parse_command_line(["-h", "h1", "stats", "-h=false", "mirror", "m"], COMMANDS)
    assert invocation.host == "h1" and invocation.options["h"] is False


def test_a_lone_h_says_it_names_the_host_and_where_help_is() -> None:
    """``mirrorbits-ctl -h`` (help, for most tools) said only "flag needs an argument: -h"."""
    with pytest.raises(Exit) as caught:
        parse_command_line(["-h"], COMMANDS)
    assert (caught.value.code, caught.value.stderr) == (
        2, "flag needs an argument: -h (the daemon's host; --help shows the usage)\n")
    with pytest.raises(Exit) as caught:
        parse_command_line(["-p"], COMMANDS)
    assert (caught.value.code, caught.value.stderr) == (2, "flag needs an argument: -p\n")


def test_reference_command_lines_keep_their_meaning() -> None:
    """Read with Go's rule first: an argument that looks like a flag stays an argument."""
    invocation = parse_command_line(["stats", "file", "-h"], COMMANDS)
    assert invocation.args == ["file", "-h"] and invocation.options["h"] is True
    invocation = parse_command_line(["stats", "-h=false", "file", "-start-date"], COMMANDS)
    assert invocation.args == ["file", "-start-date"]
    assert invocation.options["start-date"] is None and invocation.options["h"] is False
    invocation = parse_command_line(["scan", "-all"], COMMANDS)
    assert invocation.args == [] and invocation.options["all"] is True


def test_progress_text() -> None:
    assert progress_text("listing", 0, 0, 0.0) == "listing: 0 files"
    assert progress_text("listing", 1200, 0, 0.2) == "listing: 1200 files"
    assert progress_text("listing", 1200, 0, 1.5) == "listing: 1200 files, 800 files/s"
    assert progress_text("indexing", 1000, 5000, 2.0) == (
        "indexing: 1000/5000 files, 500 files/s")


def test_status_line_rewrites_and_clears_its_line() -> None:
    stream = io.StringIO()
    line = StatusLine(stream, "Scanning m... ", 40)
    line.show("listing: 12 files")
    line.show("listing: 9 files")
    line.show("indexing: 1000000/2000000 files, 100000 files/s")  # cut to the width
    line.clear()
    line.clear()
    assert stream.getvalue() == (
        "\rScanning m... listing: 12 files"
        "\rScanning m... listing: 9 files "
        "\rScanning m... indexing: 1000000/2000000"  # 40 columns less one
        f"\rScanning m... {' ' * 25}\rScanning m... "
    )
    narrow = StatusLine(stream, "Scanning a-very-long-name... ", 20)
    narrow.show("listing: 1 files")
    narrow.clear()
    assert stream.getvalue().endswith("\rScanning m... ")


def test_add_accepts_a_port_in_the_url() -> None:
    invocation = parse_command_line(["add", "-http", "http://127.0.0.31:8080/", "m"], COMMANDS)
    assert invocation.options["http"] == "http://127.0.0.31:8080/"


def test_help_goes_to_stdout_with_exit_zero() -> None:
    with pytest.raises(Exit) as caught:
        parse_command_line(["help"], COMMANDS)
    assert caught.value.code == 0 and caught.value.stdout == usage_text()
    assert "twistd mirrorbits" in usage_text()
    assert "    geoupdate Update geolocation of a mirror\n" in usage_text()


@pytest.mark.parametrize(
    ("line", "default", "expected"),
    [("", False, False), ("", True, False), ("\n", False, False), ("\n", True, True),
     ("y\n", False, True), ("Yes", False, True), ("n\n", True, False), ("x\n", True, True),
     ("x\n", False, False)],
)
def test_prompt_answers(line: str, default: bool, expected: bool) -> None:
    assert answer_means_yes(line, default) is expected


def test_confirm_on_closed_input_says_no_and_ends_the_line() -> None:
    output = io.StringIO()
    assert confirm("Removing m, are you sure? [y/N]", stdin=io.StringIO(""), stdout=output) is False
    assert output.getvalue() == "Removing m, are you sure? [y/N]\n"


def test_list_like_spec_example() -> None:
    # spec/examples/cli-list.txt (`list -score -http -rsync -location`), rows by name.
    since = 1795566827  # Wed, 25 Nov 2026 00:33:47 UTC
    mirrors = [
        Mirror(id=i, name=name, http_url=f"http://127.0.0.{ip}/",
               rsync_url=f"rsync://127.0.0.1:8730/{name}/", country_codes=country,
               continent_code=continent, enabled=True, http_up=True, state_since=since)
        for i, (name, ip, country, continent) in enumerate(
            [("paris", 2, "FR", "EU"), ("newyork", 3, "US", "NA"), ("tokyo", 4, "JP", "AS")], 1)
    ]
    options = ListOptions(score=True, http=True, rsync=True, location=True)
    date = "(Wed, 25 Nov 2026 00:33:47 UTC)"
    assert list_table(mirrors, options) == (
        "Identifier \tSCORE\tHTTP \t\t\tRSYNC \t\t\t\tLOCATION \tSTATE\tSINCE\n"
        f"newyork \t0 \thttp://127.0.0.3/ \trsync://127.0.0.1:8730/newyork/ US (NA) \tup \t{date}\n"
        f"paris \t\t0 \thttp://127.0.0.2/ \trsync://127.0.0.1:8730/paris/ \tFR (EU) \tup \t{date}\n"
        f"tokyo \t\t0 \thttp://127.0.0.4/ \trsync://127.0.0.1:8730/tokyo/ \tJP (AS) \tup \t{date}\n"
    )


@pytest.mark.parametrize(("words", "first_line"), [
    (["scan"], "Error: scan takes 1 argument (or -all), none given"),
    (["scan", "-enable"], "Error: scan takes 1 argument (or -all), none given"),
    (["stats", "mirrors", "m1"], "Error: stats counts a mirror or files (stats mirror NAME, "
                                 "stats file PATTERN), not 'mirrors'"),
])
def test_a_usage_error_names_the_problem_before_connecting(words: list[str],
                                                           first_line: str) -> None:
    """Refused by the command line itself (exit 2), so a daemon that is down cannot hide it
    behind ``connection refused``; one line says what is wrong, the usage follows."""
    with pytest.raises(Exit) as raised:
        parse_command_line(words, COMMANDS)
    lines = raised.value.stderr.splitlines()
    assert (raised.value.code, lines[0]) == (2, first_line)
    assert lines[1].startswith(f"Usage: mirrorbits-ctl {words[0]} [OPTIONS]")
    assert parse_command_line(["scan", "-all"], COMMANDS).args == []


def test_stats_help_says_the_pattern_is_a_regular_expression() -> None:
    with pytest.raises(Exit) as helped:
        parse_command_line(["stats", "--help"], COMMANDS)
    assert "file PATTERN: the downloads of each file whose path matches PATTERN, a regular\n" \
           "expression ('\\.iso$' for the files ending in .iso" in helped.value.stdout
