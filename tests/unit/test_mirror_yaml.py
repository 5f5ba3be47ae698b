"""The YAML of ``show``/``edit``: exact reference text, parsing back, diffs."""

from __future__ import annotations

import attrs
import pytest

from mirrorbits.control.mirror_yaml import (
    MirrorYamlError,
    edit_text,
    format_float32_g,
    mirror_yaml,
    parse_edit_text,
    reads_as_non_string,
    show_text,
    yaml_diff,
)
from mirrorbits.float32 import f32
from mirrorbits.model import REDIRECTS_ALLOWED, REDIRECTS_DISALLOWED, Mirror

MADRID = Mirror(
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
)

# `mirrorbits show madrid` of the reference, byte for byte.
SHOW_MADRID = (
    "Name: madrid\nHttpURL: 127.0.0.31/\nRsyncURL: rsync://127.0.0.1:8931/madrid/\n"
    'FtpURL: ""\nSponsorName: Madrid Sponsor S.L.\nSponsorURL: https://sponsor.example.es/\n'
    "SponsorLogoURL: https://sponsor.example.es/logo.png\nAdminName: Ana Admin\n"
    "AdminEmail: mirrors@madrid.example.es\n"
    "CustomData: '{\"tier\": 1, \"note\": \"<primary> & fast\"}'\n"
    "ContinentOnly: false\nCountryOnly: false\nASOnly: false\nScore: 0\n"
    "Latitude: 40.4168\nLongitude: -3.7038\nContinentCode: EU\nCountryCodes: ES\n"
    "ExcludedCountryCodes: PT\nASNum: 65101\nEnabled: true\nAllowRedirects: null\n"
    "\nComment:\nscheme-less URL: HTTP and HTTPS\n"
)


def test_show_matches_reference() -> None:
    assert show_text(MADRID) == SHOW_MADRID


def test_show_reference_quoting_of_oslo_and_non_ascii() -> None:
    oslo = Mirror(
        name="oslo", http_url="http://127.0.0.39/", country_codes="NO", continent_code="EU",
        latitude=f32(59.9139), longitude=f32(10.7522), asnum=65109, comment="never enabled",
        sponsor_name="Espelho São Paulo", score=-30,
    )
    text = show_text(oslo)
    assert 'CountryCodes: "NO"\n' in text
    assert "SponsorName: Espelho São Paulo\n" in text
    assert "Score: -30\n" in text
    assert "Latitude: 59.9139\nLongitude: 10.7522\n" in text
    assert text.endswith("AllowRedirects: null\n\nComment:\nnever enabled\n")


def test_show_with_empty_comment() -> None:
    assert show_text(Mirror(name="v")).endswith("AllowRedirects: null\n\nComment:\n\n")


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("", 'X: ""'),
        ("yes", 'X: "yes"'),
        ("Off", 'X: "Off"'),
        ("123", 'X: "123"'),
        ("1.5e3", 'X: "1.5e3"'),
        ("0x1F", 'X: "0x1F"'),
        ("null", 'X: "null"'),
        ("~", 'X: "~"'),
        ("2024-01-02", 'X: "2024-01-02"'),
        ("1:30", 'X: "1:30"'),
        ("FR BE", "X: FR BE"),
        ("http://a/b", "X: http://a/b"),
        ("a: b", "X: 'a: b'"),
        (" lead", "X: ' lead'"),
        ("#hash", "X: '#hash'"),
        ("it's", "X: it's"),
        ("{x}", "X: '{x}'"),
    ],
)
def test_string_styles(value: str, line: str) -> None:
    mirror = Mirror(sponsor_name=value)
    assert line.replace("X:", "SponsorName:") + "\n" in mirror_yaml(mirror)


def test_multiline_string_is_a_literal_block_and_reads_back() -> None:
    mirror = Mirror(name="m", http_url="h/", custom_data="one\ntwo")
    assert "CustomData: |-\n  one\n  two\n" in mirror_yaml(mirror)
    assert parse_edit_text(edit_text(mirror), Mirror()).custom_data == "one\ntwo"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (48.8566, "48.8566"),
        (-0.3763, "-0.3763"),
        (0.0, "0"),
        (100.0, "100"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
    ],
)
def test_float32_text(value: float, text: str) -> None:
    assert format_float32_g(value) == text


def test_reads_as_non_string() -> None:
    assert reads_as_non_string("NO") and reads_as_non_string("y") and reads_as_non_string("08")
    assert not reads_as_non_string("FR") and not reads_as_non_string("paris")


def test_edit_text_layout() -> None:
    text = edit_text(MADRID)
    assert text.startswith(
        "# You can now edit this mirror configuration.\n"
        "# Just save and quit when you're done.\n\nName: madrid\n"
    )
    assert text.endswith(
        "AllowRedirects: null\n\n##### Comments go below this line #####\n\n"
        "scheme-less URL: HTTP and HTTPS\n"
    )


def test_unchanged_edit_text_parses_to_the_same_mirror() -> None:
    assert parse_edit_text(edit_text(MADRID), MADRID) == MADRID


def test_edited_fields_and_comment_are_read() -> None:
    text = (
        edit_text(MADRID)
        .replace("ExcludedCountryCodes: PT", "ExcludedCountryCodes: PT, be")
        .replace("Score: 0", "Score: 25")
        .replace("AllowRedirects: null", "AllowRedirects: false")
        .replace("Enabled: true", "Enabled: no")
        .replace("Latitude: 40.4168", "Latitude: 41.5")
        .replace("scheme-less URL: HTTP and HTTPS", "  new comment\n\n")
    )
    edited = parse_edit_text(text, MADRID)
    assert edited.excluded_country_codes == "PT, be"  # sanitised by the daemon
    assert edited.score == 25
    assert edited.allow_redirects == REDIRECTS_DISALLOWED
    assert edited.enabled is False
    assert edited.latitude == 41.5
    assert edited.comment == "new comment"
    assert edited.id == MADRID.id and edited.http_up  # untouched state is kept


def test_missing_keys_keep_values_and_unknown_keys_are_ignored() -> None:
    edited = parse_edit_text("Score: 3\nSomethingElse: 1\nAllowRedirects: true\n", MADRID)
    assert edited == attrs.evolve(MADRID, score=3, allow_redirects=REDIRECTS_ALLOWED)


def test_plain_null_words_clear_strings_but_quoted_ones_do_not() -> None:
    edited = parse_edit_text('SponsorName: ~\nAdminName: "null"\nCountryCodes: NO\n', MADRID)
    assert (edited.sponsor_name, edited.admin_name, edited.country_codes) == ("", "null", "NO")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Score: abc\n", "yaml: unmarshal errors:\n  line 1: cannot unmarshal `abc` into int"),
        ("ASNum: -1\n", "line 1: cannot unmarshal `-1` into uint"),
        ("Enabled: maybe\n", "cannot unmarshal `maybe` into bool"),
        ("Name: [a\n", "yaml: line 2:"),
        ("- a\n- b\n", "yaml: line 1: the mirror must be a mapping"),
        ("Score: 1\nScore: 2\n", 'mapping key "Score" already defined at line 1'),
        ("Score: 3000000000\n", "cannot unmarshal `3000000000` into int"),
        ("Name: m\nScore: banana\n", "line 2: cannot unmarshal `banana` into int (Score takes "
                                     "a whole number from -2147483648 to 2147483647)"),
        ("AllowRedirects: maybe\n", "(AllowRedirects takes true, false or null"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(MirrorYamlError) as caught:
        parse_edit_text(text, MADRID)
    assert message in str(caught.value)


def test_diff_lists_changed_lines() -> None:
    edited = attrs.evolve(MADRID, excluded_country_codes="", country_codes="ES FR", comment="x")
    assert yaml_diff(MADRID, edited) == (
        "- CountryCodes: ES\n+ CountryCodes: ES FR\n"
        "- ExcludedCountryCodes: PT\n+ ExcludedCountryCodes: \"\"\n"
    )
    assert yaml_diff(MADRID, MADRID) == ""


def test_missing_separator_keeps_the_comment() -> None:
    assert parse_edit_text("Name: other\n", MADRID).comment == MADRID.comment
