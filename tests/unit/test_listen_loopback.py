"""The control listener's default address is loopback only, whatever the resolver says."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from mirrorbits.addresses import ListenAddressError
from mirrorbits.config import Config
from mirrorbits.listen import create_socket, parse_listen_address


def test_the_default_control_address_binds_loopback() -> None:
    host, _, _ = Config().rpc_listen_address.rpartition(":")
    assert host == "localhost"
    sock = create_socket(parse_listen_address(f"{host}:0"))
    try:
        assert ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    finally:
        sock.close()


def test_localhost_resolving_elsewhere_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def odd_resolver(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", odd_resolver)
    with pytest.raises(ListenAddressError, match="'localhost' resolves to no loopback address"):
        create_socket(parse_listen_address("localhost:0"))
