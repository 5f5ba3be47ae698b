"""Percent-encoding of the URLs we send (RFC 3986): file paths and mirrors' base URLs.

A file path is data: every byte of its UTF-8 form (undecodable bytes of a file name included)
other than an unreserved character or ``/`` is percent-encoded, so ``#``, ``?``, ``%``, ``;``,
``+`` or a space in a name reach the mirror as that name. A base URL is what an operator wrote:
its delimiters and the escapes already in it are kept, and only what may not appear in a URL
at all (spaces, control and non-ASCII characters, a ``%`` that starts no escape) is encoded; a
non-ASCII host name becomes its IDNA form. Hex digits are upper-case (RFC 3986 §2.1). Pure.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

_UNRESERVED: Final = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
_PATH_KEPT: Final = frozenset(_UNRESERVED + b"/")
_URL_KEPT: Final = frozenset(_UNRESERVED + b"%:/?#[]@!$&'()*+,;=")
# Byte value -> how it is written: itself when kept, else %XX.
_PATH_BYTES: Final = tuple(chr(b) if b in _PATH_KEPT else f"%{b:02X}" for b in range(256))
_URL_BYTES: Final = tuple(chr(b) if b in _URL_KEPT else f"%{b:02X}" for b in range(256))
_PLAIN_PATH: Final = re.compile(r"[A-Za-z0-9\-._~/]*")
_PLAIN_URL: Final = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]*")
_LONE_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_AUTHORITY: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)(.*)", re.DOTALL)


def _raw(text: str) -> bytes:
    """The bytes ``text`` stands for (file names may hold undecodable bytes as escapes)."""
    return text.encode("utf-8", "surrogateescape")


def encode_path(path: str) -> str:
    """``path`` with every byte but unreserved characters and ``/`` percent-encoded."""
    if _PLAIN_PATH.fullmatch(path):
        return path
    table = _PATH_BYTES
    return "".join([table[b] for b in _raw(path)])


@lru_cache(maxsize=4096)
def encode_url(url: str) -> str:
    """``url`` (a base URL as configured) made valid: its delimiters and escapes kept."""
    if _PLAIN_URL.fullmatch(url):
        return url
    parts = _AUTHORITY.fullmatch(url)
    if parts is not None and not parts[2].isascii():
        url = parts[1] + _ascii_authority(parts[2]) + parts[3]
    table = _URL_BYTES
    encoded = "".join([table[b] for b in _raw(url)])
    return _LONE_PERCENT.sub("%25", encoded)


def _ascii_authority(authority: str) -> str:
    """``[user@]host[:port]`` with a non-ASCII host name in its IDNA (xn--) form."""
    user, at, host_port = authority.rpartition("@")
    host, colon, port = host_port.partition(":")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return authority  # left to percent-encoding
    return user + at + host + colon + port


def file_url(base: str, path: str) -> str:
    """The URL of repository ``path`` on a mirror whose (absolute) base URL is ``base``.

    ``base`` normally ends with ``/`` and ``path`` starts with one: the two are joined, as
    the reference joins them, by dropping the path's first ``/``.
    """
    relative = path[1:] if path.startswith("/") else path
    return encode_url(base) + encode_path(relative)
