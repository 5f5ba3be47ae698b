"""Which address a request is located by: ``X-Forwarded-For`` only when it holds an IP."""

from __future__ import annotations

import pytest

from mirrorbits.web.clientip import ClientAddressPolicy, forwarded_address

OPEN = ClientAddressPolicy()


@pytest.mark.parametrize(("header", "expected"), [
    (b"100.96.6.10", "100.96.6.10"),
    (b"  100.96.6.10  ", "100.96.6.10"),
    (b"100.96.3.10, 100.96.1.10", "100.96.3.10"),
    (b"2001:db8:cafe::20", "2001:db8:cafe::20"),
    (b"[2001:DB8:CAFE::20]", "2001:db8:cafe::20"),
    (b"::ffff:100.96.6.10", "100.96.6.10"),
    (b"fe80::1%eth0", "fe80::1"),
    (b"fe80::1%<script>", "fe80::1"),
])
def test_an_ip_address_is_believed(header: bytes, expected: str) -> None:
    assert OPEN.client_ip("127.0.0.1", header) == expected


@pytest.mark.parametrize("header", [
    b"not-an-ip", b"capetown", b"", b" ", b",100.96.6.10", b"100.96.6.10:8080",
    b"<b>1.2.3.4</b>", b"1.2.3.4\x00", b"1.2.3.4\r\nX: y",
    "1.2.3.4\u00e9".encode(), b"\xff\xfe", b"01.2.3.4", b"1.2.3.4" + b" " * 200 + b"x",
    b"999.1.1.1", b"[1.2.3.4]", b"unknown",
])
def test_anything_else_gives_the_peer(header: bytes) -> None:
    assert OPEN.client_ip("127.0.0.5", header) == "127.0.0.5"
    assert forwarded_address(header.split(b",", 1)[0]) == ""


def test_untrusted_peer_is_used_even_with_a_valid_header() -> None:
    policy = ClientAddressPolicy.from_config(["10.0.0.0/8"])
    assert policy.client_ip("127.0.0.1", b"100.96.6.10") == "127.0.0.1"
    assert policy.client_ip("10.1.2.3", b"100.96.6.10") == "100.96.6.10"
    assert policy.client_ip("10.1.2.3", b"not-an-ip") == "10.1.2.3"
