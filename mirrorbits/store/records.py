"""Mirror and file records <-> the Redis hashes ``MIRROR_<id>``, ``FILE_<path>``, ``FILEINFO_``.

Pure conversions (spec §3.1, §3.6, §4.1). Unlike the reference, whose whole-record read fails
when one field is present but unparsable (e.g. ``score`` = ``""``), a bad field here reads as
its zero value and the rest of the record is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

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


class MirrorField:
    """The fields of ``MIRROR_<id>`` (spec §4.1): the only place each name is spelled."""

    ID: Final = "ID"
    NAME: Final = "name"
    HTTP: Final = "http"
    RSYNC: Final = "rsync"
    FTP: Final = "ftp"
    SPONSOR_NAME: Final = "sponsorName"
    SPONSOR_URL: Final = "sponsorURL"
    SPONSOR_LOGO: Final = "sponsorLogo"
    ADMIN_NAME: Final = "adminName"
    ADMIN_EMAIL: Final = "adminEmail"
    CUSTOM_DATA: Final = "customData"
    CONTINENT_ONLY: Final = "continentOnly"
    COUNTRY_ONLY: Final = "countryOnly"
    AS_ONLY: Final = "asOnly"
    SCORE: Final = "score"
    LATITUDE: Final = "latitude"
    LONGITUDE: Final = "longitude"
    CONTINENT_CODE: Final = "continentCode"
    COUNTRY_CODES: Final = "countryCodes"
    EXCLUDED_COUNTRY_CODES: Final = "excludedCountryCodes"
    ASNUM: Final = "asnum"
    COMMENT: Final = "comment"
    ALLOW_REDIRECTS: Final = "allowredirects"
    ENABLED: Final = "enabled"
    HTTP_UP: Final = "httpUp"
    HTTPS_UP: Final = "httpsUp"
    HTTP_DOWN_REASON: Final = "httpDownReason"
    HTTPS_DOWN_REASON: Final = "httpsDownReason"
    STATE_SINCE: Final = "stateSince"
    TZ_OFFSET: Final = "tzoffset"
    LAST_SYNC: Final = "lastSync"
    LAST_SUCCESSFUL_SYNC: Final = "lastSuccessfulSync"
    LAST_SUCCESSFUL_SYNC_PROTOCOL: Final = "lastSuccessfulSyncProtocol"
    LAST_SUCCESSFUL_SYNC_PRECISION: Final = "lastSuccessfulSyncPrecision"
    LAST_MOD_TIME: Final = "lastModTime"


class FileField:
    """The fields of ``FILE_<path>``; ``FILEINFO_<id>_<path>`` holds only the first two."""

    SIZE: Final = "size"
    MOD_TIME: Final = "modTime"
    SHA1: Final = "sha1"
    SHA256: Final = "sha256"
    MD5: Final = "md5"


_M, _F = MirrorField, FileField

MIRROR_SAVE_FIELDS = (
    _M.ID, _M.NAME, _M.HTTP, _M.RSYNC, _M.FTP, _M.SPONSOR_NAME, _M.SPONSOR_URL, _M.SPONSOR_LOGO,
    _M.ADMIN_NAME, _M.ADMIN_EMAIL, _M.CUSTOM_DATA, _M.CONTINENT_ONLY, _M.COUNTRY_ONLY, _M.AS_ONLY,
    _M.SCORE, _M.LATITUDE, _M.LONGITUDE, _M.CONTINENT_CODE, _M.COUNTRY_CODES,
    _M.EXCLUDED_COUNTRY_CODES, _M.ASNUM, _M.COMMENT, _M.ALLOW_REDIRECTS, _M.ENABLED,
)
"""The 24 fields the CLI add/edit writes with one ``HMSET``, in the reference's order."""

FILE_FIELDS = (_F.SIZE, _F.MOD_TIME, _F.SHA1, _F.SHA256, _F.MD5)
"""Fields of ``FILE_<path>``, in the order :func:`file_info_from_values` reads them."""

MIRROR_FILE_FIELDS = (_F.SIZE, _F.MOD_TIME)
"""Fields a mirror scan writes to ``FILEINFO_<id>_<path>``."""


def _text(value: str | None) -> str:
    return "" if value is None else value


# Redis field -> (Mirror attribute, decoder), covering every field of §4.1.
_MIRROR_READERS: dict[str, tuple[str, Callable[[str | None], Any]]] = {
    _M.ID: ("id", decode_int),
    _M.NAME: ("name", _text),
    _M.HTTP: ("http_url", _text),
    _M.RSYNC: ("rsync_url", _text),
    _M.FTP: ("ftp_url", _text),
    _M.SPONSOR_NAME: ("sponsor_name", _text),
    _M.SPONSOR_URL: ("sponsor_url", _text),
    _M.SPONSOR_LOGO: ("sponsor_logo_url", _text),
    _M.ADMIN_NAME: ("admin_name", _text),
    _M.ADMIN_EMAIL: ("admin_email", _text),
    _M.CUSTOM_DATA: ("custom_data", _text),
    _M.CONTINENT_ONLY: ("continent_only", decode_bool),
    _M.COUNTRY_ONLY: ("country_only", decode_bool),
    _M.AS_ONLY: ("as_only", decode_bool),
    _M.SCORE: ("score", decode_int),
    _M.LATITUDE: ("latitude", decode_f32),
    _M.LONGITUDE: ("longitude", decode_f32),
    _M.CONTINENT_CODE: ("continent_code", _text),
    _M.COUNTRY_CODES: ("country_codes", _text),
    _M.EXCLUDED_COUNTRY_CODES: ("excluded_country_codes", _text),
    _M.ASNUM: ("asnum", decode_uint),
    _M.COMMENT: ("comment", _text),
    _M.ENABLED: ("enabled", decode_bool),
    _M.HTTP_UP: ("http_up", decode_bool),
    _M.HTTPS_UP: ("https_up", decode_bool),
    _M.HTTP_DOWN_REASON: ("http_down_reason", _text),
    _M.HTTPS_DOWN_REASON: ("https_down_reason", _text),
    _M.STATE_SINCE: ("state_since", decode_unix),
    _M.ALLOW_REDIRECTS: ("allow_redirects", decode_int),
    _M.TZ_OFFSET: ("tz_offset_ms", decode_int),
    _M.LAST_SYNC: ("last_sync", decode_unix),
    _M.LAST_SUCCESSFUL_SYNC: ("last_successful_sync", decode_unix),
    _M.LAST_SUCCESSFUL_SYNC_PROTOCOL: ("last_successful_sync_protocol", decode_int),
    _M.LAST_SUCCESSFUL_SYNC_PRECISION: ("last_successful_sync_precision", decode_int),
    _M.LAST_MOD_TIME: ("last_mod_time", decode_unix),
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
        size=decode_int(h.get(_F.SIZE)),
        mod_time_ns=parse_go_time(h.get(_F.MOD_TIME)),
        sha1=_text(h.get(_F.SHA1)),
        sha256=_text(h.get(_F.SHA256)),
        md5=_text(h.get(_F.MD5)),
    )


def file_info_from_values(
    path: str, values: Sequence[str | None], fields: Sequence[str] = FILE_FIELDS
) -> FileInfo | None:
    """A file record from an ``HMGET`` of ``fields``; ``None`` when none of them is stored
    (the file is unknown)."""
    if all(value is None for value in values):
        return None
    return file_info_from_hash(path, dict(zip(fields, values, strict=False)))


def file_info_to_fields(fi: FileInfo, *, utc: bool = False) -> list[tuple[str, str]]:
    """The ``HMSET FILE_<path>`` pairs: size, modTime (Go text), sha1, sha256, md5.

    ``modTime`` is written in the server's local zone, as the reference's local scan does;
    ``utc=True`` writes ``+0000 UTC`` (mirror scans, which keep only the first two pairs).
    A missing time is written as Go's zero time.
    """
    ns = GO_ZERO_UNIX * NS_PER_S if fi.mod_time_ns is None else fi.mod_time_ns
    mod_time = format_go_time(ns) if utc or fi.mod_time_ns is None else local_go_time(ns)
    return [
        (_F.SIZE, str(fi.size)),
        (_F.MOD_TIME, mod_time),
        (_F.SHA1, fi.sha1),
        (_F.SHA256, fi.sha256),
        (_F.MD5, fi.md5),
    ]


def sanitize_location_codes(text: str) -> str:
    """Country/continent code lists: commas become spaces, upper case, single spaces."""
    return " ".join(text.replace(",", " ").upper().split())


def normalize_url(url: str) -> str:
    """A base URL with its trailing ``/`` (empty stays empty)."""
    if url and not url.endswith("/"):
        return url + "/"
    return url
