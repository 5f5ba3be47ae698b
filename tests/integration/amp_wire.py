"""A blocking AMP client over a plain socket, from a chosen source address (tests only).

Enough of the AMP wire format to send one command and read its answer: a box is a series of
(2-byte length, key, 2-byte length, value) ending with an empty key.
"""

from __future__ import annotations

import socket
import ssl
import struct


def encode_box(items: dict[bytes, bytes]) -> bytes:
    out = bytearray()
    for key, value in items.items():
        out += struct.pack("!H", len(key)) + key + struct.pack("!H", len(value)) + value
    return bytes(out + b"\x00\x00")


def _read_exactly(sock: socket.socket | ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed in the middle of a box")
        data += chunk
    return data


def read_box(sock: socket.socket | ssl.SSLSocket) -> dict[bytes, bytes]:
    box: dict[bytes, bytes] = {}
    while True:
        (key_size,) = struct.unpack("!H", _read_exactly(sock, 2))
        if key_size == 0:
            return box
        key = _read_exactly(sock, key_size)
        (value_size,) = struct.unpack("!H", _read_exactly(sock, 2))
        box[key] = _read_exactly(sock, value_size)


def call(address: tuple[str, int], command: str, source: str = "127.0.0.1",
         timeout: float = 10.0, **arguments: str) -> dict[bytes, bytes]:
    """Send ``command`` with text ``arguments`` on a new connection from ``source``.

    The answer box: ``_answer`` and the response values, or ``_error_code`` and
    ``_error_description``.
    """
    with socket.create_connection(address, timeout=timeout, source_address=(source, 0)) as sock:
        box = {b"_command": command.encode(), b"_ask": b"1"}
        box.update({key.encode(): value.encode() for key, value in arguments.items()})
        sock.sendall(encode_box(box))
        return read_box(sock)


def error_code(answer: dict[bytes, bytes]) -> str:
    """The declared error of an answer ("" for a success)."""
    return answer.get(b"_error_code", b"").decode()
