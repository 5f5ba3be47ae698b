"""Mirror and file records <-> Redis hashes (spec §3.1, §3.6, §4.1)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirrorbits.float32 import f32
from mirrorbits.model import REDIRECTS_DISALLOWED, FileInfo, Mirror
from mirrorbits.store.errors import MirrorNotFound, StoreError
from mirrorbits.store.records import (
    MIRROR_SAVE_FIELDS,
    file_info_from_hash,
    file_info_to_fields,
    mirror_from_hash,
    mirror_to_fields,
    normalize_url,
    sanitize_location_codes,
)

FIXTURE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "reference_redis.json").read_text("utf-8")
)
NS = 1_000_000_000


def test_save_fields_are_the_reference_order() -> None:
    reference = (
        "ID name http rsync ftp sponsorName sponsorURL sponsorLogo adminName adminEmail "
        "customData continentOnly countryOnly asOnly score latitude longitude continentCode "
        "countryCodes excludedCountryCodes asnum comment allowredirects enabled"
    )
    assert len(MIRROR_SAVE_FIELDS) == 24
    assert " ".join(MIRROR_SAVE_FIELDS) == reference


def test_mirror_from_reference_hash() -> None:
    m = mirror_from_hash(FIXTURE["mirrors"]["MIRROR_1"])
    assert m == Mirror(
        id=1,
        name="madrid",
        http_url="127.0.0.31/",
        rsync_url="rsync://127.0.0.1:8931/madrid/",
        sponsor_name="Madrid Sponsor S.L.",
        sponsor_url="https://sponsor.example.es/",
        sponsor_logo_url="https://sponsor.example.es/logo.png",
        admin_name="Ana Admin",
        admin_email="mirrors@madrid.example.es",
        custom_data='{"tier": 1, "note": "<primary> & fast"}',
        latitude=f32(40.4168),
        longitude=f32(-3.7038),
        continent_code="EU",
        country_codes="ES",
        excluded_country_codes="PT",
        asnum=65101,
        comment="scheme-less URL: HTTP and HTTPS",
        enabled=True,
        http_up=True,
        https_up=True,
        state_since=1795571682,
        last_sync=1795571680,
        last_successful_sync=1795571680,
        last_successful_sync_precision=1_000_000_000,
        last_mod_time=1687336800,
    )


def test_mirror_missing_fields_are_zero() -> None:
    toronto = mirror_from_hash(FIXTURE["mirrors"]["MIRROR_3"])  # no httpDownReason
    assert (toronto.score, toronto.http_up, toronto.https_up) == (25, False, True)
    assert toronto.http_down_reason == ""
    reykjavik = mirror_from_hash(FIXTURE["mirrors"]["MIRROR_8"])  # never up: no stateSince
    assert reykjavik.state_since is None
    assert reykjavik.last_mod_time is None
    assert reykjavik.http_down_reason == "Unreachable"
    assert reykjavik.status_text == "down"


def test_mirror_unparsable_field_reads_as_zero_and_keeps_the_rest() -> None:
    # The reference fails the whole read here; we keep the record.
    m = mirror_from_hash(
        {"ID": "4", "name": "x", "score": "", "latitude": "north", "stateSince": "soon",
         "enabled": "yes", "asnum": "-1", "tzoffset": "1.5", "countryCodes": "FR BE"}
    )
    assert (m.id, m.name, m.score, m.latitude, m.state_since) == (4, "x", 0, 0.0, None)
    assert (m.enabled, m.asnum, m.tz_offset_ms) == (False, 0, 0)
    assert m.country_fields == ["FR", "BE"]


def test_empty_hash_is_not_found() -> None:
    with pytest.raises(MirrorNotFound):
        mirror_from_hash({})
    assert issubclass(MirrorNotFound, StoreError)


def test_mirror_to_fields_writes_what_the_reference_wrote() -> None:
    stored = FIXTURE["mirrors"]["MIRROR_1"]
    fields = mirror_to_fields(mirror_from_hash(stored))
    assert [name for name, _ in fields] == list(MIRROR_SAVE_FIELDS)
    assert dict(fields) == {name: stored[name] for name in MIRROR_SAVE_FIELDS}


def test_mirror_to_fields_values() -> None:
    m = Mirror(id=7, name="n", latitude=-23.5505, longitude=1e-5, score=-30, asnum=4200000123,
               allow_redirects=REDIRECTS_DISALLOWED, continent_only=True, enabled=False)
    values = dict(mirror_to_fields(m))
    assert values["ID"] == "7"
    assert (values["latitude"], values["longitude"]) == ("-23.5505", "1e-05")
    assert (values["score"], values["asnum"]) == ("-30", "4200000123")
    assert (values["allowredirects"], values["continentOnly"], values["enabled"]) == ("2", "1", "0")


_names = st.text(st.characters(codec="utf-8"), max_size=20)


@given(
    st.builds(
        Mirror,
        id=st.integers(min_value=1, max_value=2**31),
        name=_names,
        http_url=_names,
        custom_data=_names,
        score=st.integers(min_value=-(2**63), max_value=2**63 - 1),
        latitude=st.floats(min_value=-90, max_value=90, width=32),
        longitude=st.floats(min_value=-180, max_value=180, width=32),
        asnum=st.integers(min_value=0, max_value=2**32),
        continent_only=st.booleans(),
        enabled=st.booleans(),
        allow_redirects=st.sampled_from([0, 1, 2]),
    )
)
def test_mirror_fields_round_trip(m: Mirror) -> None:
    assert mirror_from_hash(dict(mirror_to_fields(m))) == m


def test_file_info_from_reference_hashes() -> None:
    arm = FIXTURE["files"]["FILE_/pool/main/tool_2.4.1_arm64.deb"]
    info = file_info_from_hash("/pool/main/tool_2.4.1_arm64.deb", arm)
    assert info == FileInfo(
        path="/pool/main/tool_2.4.1_arm64.deb",
        size=46001,
        mod_time_ns=1686990600 * NS + 123456789,
        sha1="a7ff4d2796c77e8d38e67aaf134f5f3ca97e1793",
        sha256="6c3a72981c2ab0f1e01c90a9e8e6eac468fb16db19b32d02fa32292b6e04fefd",
        md5="5bb611030b4ed6c8c65e60f9d55c5276",
    )
    on_mirror = file_info_from_hash("/ANNOUNCE.md", FIXTURE["files"]["FILEINFO_1_/ANNOUNCE.md"])
    assert on_mirror == FileInfo(path="/ANNOUNCE.md", size=66, mod_time_ns=1687249800 * NS)


def test_file_info_missing_and_bad_fields() -> None:
    info = file_info_from_hash("/x", {"size": None, "modTime": "yesterday", "sha1": None})
    assert info == FileInfo(path="/x")
    assert file_info_from_hash("/x", {}) == FileInfo(path="/x")


@pytest.fixture
def utc_zone(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.mark.usefixtures("utc_zone")
def test_file_info_to_fields_writes_the_reference_text() -> None:
    stored = FIXTURE["files"]["FILE_/pool/main/tool_2.4.1_arm64.deb"]
    info = file_info_from_hash("/pool/main/tool_2.4.1_arm64.deb", stored)
    fields = file_info_to_fields(info)
    assert [name for name, _ in fields] == ["size", "modTime", "sha1", "sha256", "md5"]
    assert dict(fields) == stored
    assert dict(fields)["modTime"] == "2023-06-17 08:30:00.123456789 +0000 UTC"


def test_file_info_to_fields_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        info = FileInfo(path="/a", size=3, mod_time_ns=1704164645 * NS)
        assert dict(file_info_to_fields(info))["modTime"] == "2024-01-02 04:04:05 +0100 CET"
        utc = dict(file_info_to_fields(info, utc=True))["modTime"]
        assert utc == "2024-01-02 03:04:05 +0000 UTC"
        assert file_info_from_hash("/a", dict(file_info_to_fields(info))) == info
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_file_info_without_time_writes_go_zero_time() -> None:
    fields = dict(file_info_to_fields(FileInfo(path="/a")))
    assert fields["modTime"] == "0001-01-01 00:00:00 +0000 UTC"
    assert file_info_from_hash("/a", fields).mod_time_ns is None


@pytest.mark.parametrize(
    ("text", "clean"),
    [("fr, be,lu", "FR BE LU"), ("  pl   cz\tsk ", "PL CZ SK"), ("", ""), (",,", ""), ("eu", "EU")],
)
def test_sanitize_location_codes(text: str, clean: str) -> None:
    assert sanitize_location_codes(text) == clean


@pytest.mark.parametrize(
    ("url", "clean"),
    [("http://a/b", "http://a/b/"), ("127.0.0.31/", "127.0.0.31/"), ("", ""), ("ftp://h", "ftp://h/")],
)
def test_normalize_url(url: str, clean: str) -> None:
    assert normalize_url(url) == clean
