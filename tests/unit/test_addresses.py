"""Listen, Redis and sentinel addresses: parsed, or refused with the reason."""

from __future__ import annotations

import socket

import pytest

from mirrorbits.addresses import (
    AddressError,
    ListenAddress,
    ListenAddressError,
    join_host_port,
    parse_listen_address,
    split_host_port,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:6379", ("127.0.0.1", 6379)),
        ("redis.example:7000", ("redis.example", 7000)),
        ("redis_1:6379", ("redis_1", 6379)),
        ("[::1]:6380", ("::1", 6380)),
        ("[fe80::1%eth0]:6380", ("fe80::1%eth0", 6380)),
        (":6390", ("", 6390)),
        ("localhost.:1", ("localhost.", 1)),
    ],
)
def test_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected host:port"),
        ("redis", "expected host:port (the port is missing: 'redis:PORT')"),
        ("6379", "expected host:port (a port alone: '127.0.0.1:6379'?)"),
        ("redis:", "the port '' is not a number"),
        ("redis:http", "the port 'http' is not a number"),
        ("redis:-1", "the port '-1' is not a number"),
        ("redis:０", "the port '０' is not a number"),
        ("redis:0", "the port must be between 1 and 65535, not 0"),
        ("redis:65536", "the port must be between 1 and 65535, not 65536"),
        ("::1:6379", "an IPv6 address must be written in brackets: [address]:port"),
        ("[::1:6379", "expected [IPv6 address]:port"),
        ("[::1]", "expected [IPv6 address]:port"),
        ("[10.0.0.1]:6379", "'10.0.0.1' is not an IPv6 address"),
        ("300.0.0.1:6379", "'300.0.0.1' is not an IP address or a host name"),
        ("a b:6379", "'a b' is not an IP address or a host name"),
        ("-a:6379", "'-a' is not an IP address or a host name"),
        ("a..b:6379", "'a..b' is not an IP address or a host name"),
        (" a:6379", "spaces around the address"),
    ],
)
def test_refused_host_and_port(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as raised:
        split_host_port(text)
    assert str(raised.value) == reason


def test_listen_addresses() -> None:
    assert parse_listen_address("127.0.0.1:8080") == ListenAddress(
        socket.AF_INET, host="127.0.0.1", port=8080)
    assert parse_listen_address("[::1]:0") == ListenAddress(socket.AF_INET6, host="::1", port=0)
    assert parse_listen_address("localhost:80").family == socket.AF_INET
    assert parse_listen_address(":8080").host == ""
    assert parse_listen_address("unix:/run/m.sock", unix_mode=0o600) == ListenAddress(
        socket.AF_UNIX, path="/run/m.sock", mode=0o600)
    assert str(parse_listen_address("unix:/run/m.sock")) == "unix:/run/m.sock"
    assert str(parse_listen_address("[::1]:80")) == "[::1]:80"
    assert join_host_port("::", 1) == "[::]:1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nonsense", "expected host:port or unix:/path"),
        ("8080", "expected host:port or unix:/path (':8080' listens on every address)"),
        ("127.0.0.1:99999", "the port must be between 0 and 65535, not 99999"),
        ("unix:", "empty UNIX socket path"),
        ("unix:/a\0b", "NUL character in the UNIX socket path"),
        ("unix:/" + "a" * 107, "UNIX socket path longer than 107 bytes"),
    ],
)
def test_refused_listen_addresses(text: str, reason: str) -> None:
    with pytest.raises(ListenAddressError) as raised:
        parse_listen_address(text)
    assert str(raised.value) == reason
