"""Percent-encoding of the URLs the redirector sends (RFC 3986)."""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirrorbits.urls import encode_path, encode_url, file_url

ODD_NAMES = [
    "notes #1 100%.txt", "what?.iso", "a+b.tar.gz", "gu\u00eda-r\u00e1pida.pdf",
    "\u65e5\u672c\u8a9e.txt", "semi;colon.txt", "a&b=c.txt", "it's.txt", "-leading.txt",
    "tab\there", "new\nline", "del\x7f", "quote\".txt", "<angle>.txt", "back\\slash",
    "caret^`{|}.txt", "%41 not an escape", "~tilde_-.ok", "colon:at@comma,.txt",
    "brackets[1](2)*!$.txt",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_path_is_encoded_like_urllib_quote_keeping_only_slashes(name: str) -> None:
    path = f"/dir one/{name}"
    assert encode_path(path) == quote(path, safe="/")
    assert unquote_to_bytes(encode_path(path)) == path.encode()


def test_plain_paths_are_returned_as_they_are() -> None:
    path = "/pool/main/tool_2.4.1_amd64.deb"
    assert encode_path(path) is path


def test_undecodable_bytes_of_a_file_name_are_sent_as_those_bytes() -> None:
    name = b"/caf\xe9.txt".decode("utf-8", "surrogateescape")  # a Latin-1 name on disk
    assert encode_path(name) == "/caf%E9.txt"


@given(st.text())
def test_any_path_round_trips_and_is_plain_ascii(path: str) -> None:
    encoded = encode_path(path)
    assert encoded.isascii()
    assert all(c.isalnum() or c in "-._~/%" for c in encoded)
    assert unquote_to_bytes(encoded) == path.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(("written", "sent"), [
    ("http://m.example/pub/", "http://m.example/pub/"),
    ("http://m.example/my%20mirror/", "http://m.example/my%20mirror/"),  # kept, not %2520
    ("http://m.example/my mirror/", "http://m.example/my%20mirror/"),
    ("http://m.example/100%/", "http://m.example/100%25/"),
    ("http://m.example/%zz/%4/", "http://m.example/%25zz/%254/"),
    ("https://m.example:8443/a;b=c/~u/", "https://m.example:8443/a;b=c/~u/"),
    ("http://m.example/d\u00e9p\u00f4t/", "http://m.example/d%C3%A9p%C3%B4t/"),
    ("http://b\u00fccher.example/pub/", "http://xn--bcher-kva.example/pub/"),
    ("http://user@b\u00fccher.example:8080/", "http://user@xn--bcher-kva.example:8080/"),
    ("http://m.example/\"<x>\"/", "http://m.example/%22%3Cx%3E%22/"),
    ("127.0.0.31/", "127.0.0.31/"),
])
def test_a_base_url_keeps_what_the_operator_encoded(written: str, sent: str) -> None:
    assert encode_url(written) == sent
    assert encode_url(sent) == sent  # idempotent: never encoded twice


@given(st.text())
def test_any_base_url_becomes_valid_and_stays_so(url: str) -> None:
    encoded = encode_url(url)
    assert encoded.isascii() and " " not in encoded
    assert encode_url(encoded) == encoded


def test_file_url_joins_base_and_path_like_the_reference() -> None:
    url = file_url("http://m.example/my mirror/", "/notes #1 100%.txt")
    assert url == "http://m.example/my%20mirror/notes%20%231%20100%25.txt"
    parts = urlsplit(url)
    assert (parts.query, parts.fragment) == ("", "")
    assert file_url("https://m.example/", "") == "https://m.example/"
