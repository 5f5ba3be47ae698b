"""Mirror and file records <-> the Redis hashes ``MIRROR_<id>``, ``FILE_<path>``, ``FILEINFO_``.

Pure conversions (spec §3.1, §3.6, §4.1). Unlike the reference, whose whole-record read fails
when one field is present but unparsable (e.g. ``score`` = ``""``), a bad field here reads as
its zero value and the rest of the record is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mirrorbits.encoding import (
    GO_ZERO_UNIX,
    NS_PER_S,
    decode_bool,
    decode_f32,
    decode_int,
    decode_uint,
    decode_unix,
    encode_bool,
    encode_f32,
    format_go_time,
    local_go_time,
    parse_go_time,
)
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.store.errors import MirrorNotFound

MIRROR_SAVE_FIELDS = (
    "ID",
    "name",
    "http",
    "rsync",
    "ftp",
    "sponsorName",
    "sponsorURL",
    "sponsorLogo",
    "adminName",
    "adminEmail",
    "customData",
    "continentOnly",
    "countryOnly",
    "asOnly",
    "score",
    "latitude",
    "longitude",
    "continentCode",
    "countryCodes",
    "excludedCountryCodes",
    "asnum",
    "comment",
    "allowredirects",
    "enabled",
)
"""The 24 fields the CLI add/edit writes with one ``HMSET``, in the reference's order."""

FILE_FIELDS = ("size", "modTime", "sha1", "sha256", "md5")
"""Fields of ``FILE_<path>``; ``FILEINFO_<id>_<path>`` holds only the first two."""


def _text(value: str | None) -> str:
    return "" if value is None else value


# Redis field -> (Mirror attribute, decoder), covering every field of §4.1.
_MIRROR_READERS: dict[str, tuple[str, Callable[[str | None], Any]]] = {
    "ID": ("id", decode_int),
    "name": ("name", _text),
    "http": ("http_url", _text),
    "rsync": ("rsync_url", _text),
    "ftp": ("ftp_url", _text),
    "sponsorName": ("sponsor_name", _text),
    "sponsorURL": ("sponsor_url", _text),
    "sponsorLogo": ("sponsor_logo_url", _text),
    "adminName": ("admin_name", _text),
    "adminEmail": ("admin_email", _text),
    "customData": ("custom_data", _text),
    "continentOnly": ("continent_only", decode_bool),
    "countryOnly": ("country_only", decode_bool),
    "asOnly": ("as_only", decode_bool),
    "score": ("score", decode_int),
    "latitude": ("latitude", decode_f32),
    "longitude": ("longitude", decode_f32),
    "continentCode": ("continent_code", _text),
    "countryCodes": ("country_codes", _text),
    "excludedCountryCodes": ("excluded_country_codes", _text),
    "asnum": ("asnum", decode_uint),
    "comment": ("comment", _text),
    "enabled": ("enabled", decode_bool),
    "httpUp": ("http_up", decode_bool),
    "httpsUp": ("https_up", decode_bool),
    "httpDownReason": ("http_down_reason", _text),
    "httpsDownReason": ("https_down_reason", _text),
    "stateSince": ("state_since", decode_unix),
    "allowredirects": ("allow_redirects", decode_int),
    "tzoffset": ("tz_offset_ms", decode_int),
    "lastSync": ("last_sync", decode_unix),
    "lastSuccessfulSync": ("last_successful_sync", decode_unix),
    "lastSuccessfulSyncProtocol": ("last_successful_sync_protocol", decode_int),
    "lastSuccessfulSyncPrecision": ("last_successful_sync_precision", decode_int),
    "lastModTime": ("last_mod_time", decode_unix),
}


def mirror_to_fields(m: Mirror) -> list[tuple[str, str]]:
    """The ``HMSET MIRROR_<id>`` pairs of an add/edit, in :data:`MIRROR_SAVE_FIELDS` order.

    Values are written as given: normalise URLs and location codes beforehand
    (:func:`normalize_url`, :func:`sanitize_location_codes`).
    """
    values = (
        str(m.id),
        m.name,
        m.http_url,
        m.rsync_url,
        m.ftp_url,
        m.sponsor_name,
        m.sponsor_url,
        m.sponsor_logo_url,
        m.admin_name,
        m.admin_email,
        m.custom_data,
        encode_bool(m.continent_only),
        encode_bool(m.country_only),
        encode_bool(m.as_only),
        str(m.score),
        encode_f32(m.latitude),
        encode_f32(m.longitude),
        m.continent_code,
        m.country_codes,
        m.excluded_country_codes,
        str(m.asnum),
        m.comment,
        str(m.allow_redirects),
        encode_bool(m.enabled),
    )
    return list(zip(MIRROR_SAVE_FIELDS, values, strict=True))


def mirror_from_hash(h: Mapping[str, str]) -> Mirror:
    """A mirror from its ``HGETALL MIRROR_<id>`` reply.

    Missing fields take their zero value; so do unparsable ones (no error is raised for them).
    Raises :class:`MirrorNotFound` for an empty reply (the key does not exist).
    """
    if not h:
        raise MirrorNotFound("mirror not found")
    values = {attr: decode(h.get(field)) for field, (attr, decode) in _MIRROR_READERS.items()}
    return Mirror(**values)


def file_info_from_hash(path: str, h: Mapping[str, str | None]) -> FileInfo:
    """A file record from a ``FILE_``/``FILEINFO_`` hash (missing or bad fields read as zero).

    An empty hash gives a ``FileInfo`` with zero values (size 0, no modification time);
    callers that must tell "unknown file" apart check the reply first.
    """
    return FileInfo(
        path=path,
        size=decode_int(h.get("size")),
        mod_time_ns=parse_go_time(h.get("modTime")),
        sha1=_text(h.get("sha1")),
        sha256=_text(h.get("sha256")),
        md5=_text(h.get("md5")),
    )


def file_info_to_fields(fi: FileInfo, *, utc: bool = False) -> list[tuple[str, str]]:
    """The ``HMSET FILE_<path>`` pairs: size, modTime (Go text), sha1, sha256, md5.

    ``modTime`` is written in the server's local zone, as the reference's local scan does;
    ``utc=True`` writes ``+0000 UTC`` (mirror scans, which keep only the first two pairs).
    A missing time is written as Go's zero time.
    """
    ns = GO_ZERO_UNIX * NS_PER_S if fi.mod_time_ns is None else fi.mod_time_ns
    mod_time = format_go_time(ns) if utc or fi.mod_time_ns is None else local_go_time(ns)
    return [
        ("size", str(fi.size)),
        ("modTime", mod_time),
        ("sha1", fi.sha1),
        ("sha256", fi.sha256),
        ("md5", fi.md5),
    ]


def sanitize_location_codes(text: str) -> str:
    """Country/continent code lists: commas become spaces, upper case, single spaces."""
    return " ".join(text.replace(",", " ").upper().split())


def normalize_url(url: str) -> str:
    """A base URL with its trailing ``/`` (empty stays empty)."""
    if url and not url.endswith("/"):
        return url + "/"
    return url
