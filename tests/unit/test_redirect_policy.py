"""The health checks' redirect policy: hosts, schemes, and the kinds of addresses."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address

from mirrorbits.health.redirects import AddressGuard, address_kind, redirect_problem
from mirrorbits.hostpatterns import host_matches

MIRROR = "http://mirror.example.org/pub"


@pytest.mark.parametrize(("source", "target"), [
    (MIRROR + "/a", "http://mirror.example.org/b"),
    (MIRROR + "/a", "https://MIRROR.example.org./b"),
    (MIRROR + "/a", "http://mirror.example.org:8080/b"),
    ("https://mirror.example.org/a", "https://mirror.example.org:8443/b"),
])
def test_same_host_and_upgrades_are_followed(source: str, target: str) -> None:
    assert redirect_problem(source, target, MIRROR, ()) is None


def test_refusals_say_why() -> None:
    assert redirect_problem(MIRROR, "http://cdn.example.org/b", MIRROR, ()) == (
        "redirect to another host (cdn.example.org) refused: not in AllowRedirectHosts")
    assert redirect_problem("https://mirror.example.org/", "http://mirror.example.org/b",
                            MIRROR, ()) == "redirect from HTTPS to HTTP refused"
    assert redirect_problem(MIRROR, "ftp://mirror.example.org/b", MIRROR, ("*",)) == (
        "redirect to a ftp URL refused")


@pytest.mark.parametrize(("host", "patterns", "matches"), [
    ("cdn.example.org", ("cdn.example.org",), True),
    ("CDN.example.org.", ("cdn.example.org",), True),
    ("a.cdn.example.org", ("*.example.org",), True),
    ("example.org", ("*.example.org",), False),
    ("evilexample.org", ("*.example.org",), False),
    ("anything.test", ("*",), True),
    ("::1", ("[::1]",), True),
    ("cdn.example.org", (), False),
])
def test_host_patterns(host: str, patterns: tuple[str, ...], matches: bool) -> None:
    assert host_matches(host, patterns) is matches


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.2", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("172.16.0.1", "private"),
    ("100.64.0.1", "private"), ("fd00::1", "private"), ("0.0.0.0", "private"),
    ("224.0.0.1", "private"), ("93.184.215.14", "public"), ("2a00:1450::1", "public"),
])
def test_address_kinds(address: str, kind: str) -> None:
    assert address_kind(address) == kind


def test_a_redirect_reaches_a_non_public_address_only_from_one_of_its_kind() -> None:
    public = AddressGuard()
    assert public.first(IPv4Address("TCP", "93.184.215.14", 80)) is None
    assert public.redirected(IPv4Address("TCP", "198.51.100.7", 80)) is not None  # TEST-NET
    assert public.redirected(IPv4Address("TCP", "8.8.8.8", 80)) is None
    assert public.redirected(IPv4Address("TCP", "169.254.169.254", 80)) == (
        "redirect to a link-local address (169.254.169.254) refused: the mirror is not on one")
    assert public.redirected(IPv6Address("TCP", "::1", 80)) is not None
    internal = AddressGuard()
    internal.first(IPv4Address("TCP", "10.0.0.5", 80))
    assert internal.redirected(IPv4Address("TCP", "10.0.0.6", 80)) is None
    assert internal.redirected(IPv4Address("TCP", "127.0.0.1", 80)) is not None
