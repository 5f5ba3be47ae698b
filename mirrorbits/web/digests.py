"""The digests of a file sent with its redirects, when the repository scan knows them.

RFC 9530 ``Repr-Digest`` (``sha-256=:<base64>:``; ``sha-512`` would join it, but no scan
computes it) and the older RFC 3230 ``Digest`` (``SHA-256=<base64>``, then ``SHA=`` and
``MD5=`` when those are known: RFC 9530 deprecates them, so they stay out of
``Repr-Digest``). Values are the base64 of the raw digest bytes; a hex string of the wrong
length or with other characters is left out. Computed once per file (the per-file memo),
with the redirect's ``Link`` to the file's Metalink (:func:`file_headers`).
"""

from __future__ import annotations

from base64 import b64encode
from typing import Final

from mirrorbits.model import FileInfo
from mirrorbits.web.metalink import describedby_link

REPR_DIGEST: Final = b"Repr-Digest"
DIGEST: Final = b"Digest"
LINK: Final = b"Link"

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


def file_headers(info: FileInfo) -> FileHeaders:
    """Every header about the file on its redirects: the ``Link`` to its Metalink
    (:func:`~mirrorbits.web.metalink.describedby_link`), then its digests."""
    return ((LINK, describedby_link(info.path)), *digest_headers(info))
