"""The digests of a file sent with its redirects, when the repository scan knows them.

RFC 9530 ``Repr-Digest`` (``sha-256=:<base64>:``; ``sha-512`` would join it, but no scan
computes it) and the older RFC 3230 ``Digest`` (``SHA-256=<base64>``, then ``SHA=`` and
``MD5=`` when those are known: RFC 9530 deprecates them, so they stay out of
``Repr-Digest``). Values are the base64 of the raw digest bytes; a hex string of the wrong
length or with other characters is left out. Computed once per file (the per-file memo).
"""

from __future__ import annotations

from base64 import b64encode
from typing import Final

from mirrorbits.model import FileInfo

REPR_DIGEST: Final = b"Repr-Digest"
DIGEST: Final = b"Digest"

FileHeaders = tuple[tuple[bytes, bytes], ...]


def _raw(hex_digest: str, size: int) -> bytes | None:
    """The bytes of ``hex_digest`` if it is one of ``size`` bytes, else None."""
    if len(hex_digest) != 2 * size:
        return None
    try:
        return bytes.fromhex(hex_digest)
    except ValueError:
        return None


def digest_headers(info: FileInfo) -> FileHeaders:
    """``Repr-Digest`` and ``Digest`` of ``info`` (none when no hash is known)."""
    sha256 = _raw(info.sha256, 32)
    sha1 = _raw(info.sha1, 20)
    md5 = _raw(info.md5, 16)
    headers: list[tuple[bytes, bytes]] = []
    if sha256 is not None:
        headers.append((REPR_DIGEST, b"sha-256=:" + b64encode(sha256) + b":"))
    legacy = [name + b"=" + b64encode(raw)
              for name, raw in ((b"SHA-256", sha256), (b"SHA", sha1), (b"MD5", md5))
              if raw is not None]
    if legacy:
        headers.append((DIGEST, b",".join(legacy)))
    return tuple(headers)
