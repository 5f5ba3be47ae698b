"""The digest headers of a file (RFC 9530 ``Repr-Digest``, RFC 3230 ``Digest``)."""

from __future__ import annotations

import hashlib
from base64 import b64encode

from mirrorbits.model import FileInfo
from mirrorbits.web.digests import digest_headers

CONTENT = b"the bytes of a file\n"


def b64(raw: bytes) -> bytes:
    return b64encode(raw)


def test_every_known_hash() -> None:
    info = FileInfo(path="/f", sha256=hashlib.sha256(CONTENT).hexdigest(),
                    sha1=hashlib.sha1(CONTENT).hexdigest(), md5=hashlib.md5(CONTENT).hexdigest())
    sha256 = b64(hashlib.sha256(CONTENT).digest())
    assert digest_headers(info) == (
        (b"Repr-Digest", b"sha-256=:" + sha256 + b":"),
        (b"Digest", b"SHA-256=" + sha256 + b",SHA=" + b64(hashlib.sha1(CONTENT).digest())
         + b",MD5=" + b64(hashlib.md5(CONTENT).digest())),
    )


def test_sha256_only_upper_case_hex() -> None:
    hexdigest = hashlib.sha256(CONTENT).hexdigest().upper()
    sha256 = b64(hashlib.sha256(CONTENT).digest())
    assert digest_headers(FileInfo(path="/f", sha256=hexdigest)) == (
        (b"Repr-Digest", b"sha-256=:" + sha256 + b":"), (b"Digest", b"SHA-256=" + sha256))


def test_deprecated_hashes_stay_out_of_repr_digest() -> None:
    info = FileInfo(path="/f", md5=hashlib.md5(CONTENT).hexdigest())
    assert digest_headers(info) == ((b"Digest", b"MD5=" + b64(hashlib.md5(CONTENT).digest())),)


def test_no_or_malformed_hash_no_header() -> None:
    assert digest_headers(FileInfo(path="/f")) == ()
    assert digest_headers(FileInfo(path="/f", sha256="zz" * 32, sha1="ab", md5="0" * 31)) == ()
