"""Pure parts of the Redis store: version comparison, addresses, matching, save commands."""

from __future__ import annotations

import pytest

from mirrorbits.model import Mirror
from mirrorbits.store.connection import describe, parse_address
from mirrorbits.store.dbversion import _split_file_info
from mirrorbits.store.errors import StoreError
from mirrorbits.store.mirrors import match_names, prepare, save_commands
from mirrorbits.store.records import MIRROR_SAVE_FIELDS
from mirrorbits.store.redis import parse_version, version_at_least


@pytest.mark.parametrize("version", ["", "2.0", "2.0.0", "3.1.99", "3.0"])
def test_versions_older_than_3_2_are_refused(version: str) -> None:
    assert not version_at_least(version, "3.2.0")
    assert not version_at_least(version, "3.2")


@pytest.mark.parametrize("version", ["3.2", "3.2.0", "6.0", "6.0.0", "7.0.15", "10.0.1"])
def test_versions_from_3_2_are_accepted(version: str) -> None:
    assert version_at_least(version, "3.2.0")
    assert version_at_least(version, "3.2")


def test_parse_version_pads_and_ignores_suffixes() -> None:
    assert parse_version("7.0.15") == (7, 0, 15)
    assert parse_version("3.2") == (3, 2, 0)
    assert parse_version("") == (0, 0, 0)
    assert parse_version("7.2.0-rc1") == (7, 2, 0)
    assert parse_version("6.2.4.1") == (6, 2, 4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:6379", ("127.0.0.1", 6379)),
        ("redis.example:7000", ("redis.example", 7000)),
        ("redis.example", ("redis.example", 6379)),
        ("[::1]:6380", ("::1", 6380)),
        ("[::1]", ("::1", 6379)),
        (":6390", ("127.0.0.1", 6390)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


def test_parse_address_rejects_garbage() -> None:
    with pytest.raises(StoreError):
        parse_address("host:port")
    with pytest.raises(StoreError):
        parse_address("")


NAMES = {"1": "mirror2", "2": "mirror", "3": "Other-Mirror", "4": "zeta"}


def test_an_exact_name_wins_alone() -> None:
    assert match_names(NAMES, "mirror") == [(2, "mirror")]


def test_substring_match_ignores_case_and_sorts_by_name() -> None:
    assert match_names(NAMES, "MIRR") == [(3, "Other-Mirror"), (2, "mirror"), (1, "mirror2")]
    assert match_names(NAMES, "Mirror") == [(3, "Other-Mirror"), (2, "mirror"), (1, "mirror2")]
    assert match_names(NAMES, "nothing") == []


def test_save_commands_follow_the_scheme_rule() -> None:
    http = save_commands(prepare(Mirror(id=4, name="a", http_url="http://h/")))
    https = save_commands(prepare(Mirror(id=4, name="a", http_url="https://h")))
    bare = save_commands(prepare(Mirror(id=4, name="a", http_url="h/p")))
    assert http[1:] == [("HMSET", "MIRROR_4", "httpsUp", "0"), ("HSET", "MIRRORS", "4", "a")]
    assert https[1:] == [("HMSET", "MIRROR_4", "httpUp", "0"), ("HSET", "MIRRORS", "4", "a")]
    assert bare[1:] == [("HSET", "MIRRORS", "4", "a")]
    assert https[0][:4] == ("HMSET", "MIRROR_4", "ID", "4")
    assert https[0][2::2] == MIRROR_SAVE_FIELDS  # the reference's field order
    assert https[0][6:8] == ("http", "https://h/")
    assert len(https[0]) == 2 + 2 * 24


def test_prepare_normalises_urls_and_location_codes() -> None:
    m = prepare(Mirror(http_url="h", rsync_url="rsync://r/x", ftp_url="", continent_code="eu",
                       country_codes="fr,be  lu", excluded_country_codes=" de ,at"))
    assert (m.http_url, m.rsync_url, m.ftp_url) == ("h/", "rsync://r/x/", "")
    assert (m.continent_code, m.country_codes, m.excluded_country_codes) == (
        "EU", "FR BE LU", "DE AT")


def test_v0_file_info_keys_are_split_on_a_known_name() -> None:
    ids = {"a": 1, "a_b": 2, "x_/y": 3}
    assert _split_file_info("FILEINFO_a_/f.txt", ids) == ("a", "/f.txt")
    assert _split_file_info("FILEINFO_a_b_/dir/f_/g", ids) == ("a_b", "/dir/f_/g")
    assert _split_file_info("FILEINFO_x_/y_/z", ids) == ("x_/y", "/z")
    assert _split_file_info("FILEINFO_gone_/f", ids) is None


@pytest.mark.parametrize(("error", "said"), [
    ("could not set dbid=0: NOAUTH Authentication required.",
     "could not set dbid=0: NOAUTH Authentication required. (this Redis wants a password: "
     "RedisPassword)"),
    ("could not auth: WRONGPASS invalid username-password pair or user is disabled.",
     "could not auth: WRONGPASS invalid username-password pair or user is disabled. "
     "(RedisPassword is not this Redis' password)"),
    ("Connection refused", "Connection refused"),
])
def test_a_refused_password_names_the_key(error: str, said: str) -> None:
    assert describe(RuntimeError(error)) == said
