"""What a STANDARD request answers: the JSON document and the redirect headers (spec §8.4, §8.5).

Pure: takes the selection result, returns bytes. Every URL is percent-encoded
(:mod:`mirrorbits.urls`); file paths in the JSON document are data and stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mirrorbits.encoding import rfc3339_from_ns, rfc3339_from_unix
from mirrorbits.gojson import F32, dumps
from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.selection.types import Candidate
from mirrorbits.urls import encode_path, encode_url, file_url
from mirrorbits.web.unavailable import NoMirrorCause, cause_text, download_outcome


def redirect_url(candidate: Candidate, path: str) -> bytes:
    """The percent-encoded URL of ``path`` on the candidate (its absolute base URL)."""
    return file_url(candidate.absolute_url, path).encode("ascii")


def link_headers(mirrors: list[Candidate], path: str, max_links: int) -> list[bytes]:
    """``Link: <url>; rel=duplicate; pri=k; geo=cc`` for the alternatives of the first mirror."""
    links = []
    for priority, candidate in enumerate(mirrors[1 : 1 + max(0, max_links)], start=1):
        fields = candidate.mirror.country_fields
        geo = fields[0].lower() if fields else ""
        links.append(b"<%s>; rel=duplicate; pri=%d; geo=%s"
                     % (redirect_url(candidate, path), priority, geo.encode()))
    return links


@lru_cache(maxsize=8192)
def _encoded_base(base: str, country: str) -> tuple[bytes, bytes, bytes]:
    """A mirror's share of its header values, common to every file: ``Location`` prefix,
    ``Link`` prefix and ``Link`` suffix (``; geo=cc``)."""
    encoded = encode_url(base).encode("ascii")
    return encoded, b"<" + encoded, b"; geo=" + country.lower().encode()


_EXCLUDED_BASE = (b"", b"", b"")
# The ``pri=`` values of the usual number of ``Link`` headers, formatted once.
_PRIORITIES = tuple(b"%d" % priority for priority in range(64))


class RedirectBytes:
    """The header values of one file's redirects, encoded once per (file, protocol demand).

    The encoded path is kept once; each mirror's part is shared by every file. Entries that
    the client-independent rules exclude have an empty ``location``.
    """

    __slots__ = ("_bases", "_link_path", "_location_path")

    def __init__(self, bases: Sequence[tuple[str, Sequence[str]]], path: str) -> None:
        """``bases``: per entry, its absolute base URL ("" if excluded) and country codes."""
        relative = encode_path(path[1:] if path.startswith("/") else path).encode("ascii")
        self._location_path = relative
        self._link_path = relative + b">; rel=duplicate; pri="
        self._bases = tuple(_encoded_base(base, fields[0] if fields else "") if base
                            else _EXCLUDED_BASE for base, fields in bases)

    def location(self, index: int) -> bytes:
        """The ``Location`` of entry ``index`` (empty if excluded)."""
        prefix = self._bases[index][0]
        return prefix + self._location_path if prefix else b""

    def links(self, order: Sequence[tuple[int, float]], max_links: int) -> list[bytes]:
        """The ``Link`` values for the alternatives of the first mirror of ``order``."""
        bases, path = self._bases, self._link_path
        alternatives = order[1 : 1 + max(0, max_links)]
        if len(alternatives) >= len(_PRIORITIES):
            return [b"%s%s%d%s" % (bases[index][1], path, priority, bases[index][2])
                    for priority, (index, _) in enumerate(alternatives, 1)]
        values = []
        for priority, (index, _) in enumerate(alternatives, 1):
            _, link, geo = bases[index]
            values.append(b"".join((link, path, _PRIORITIES[priority], geo)))
        return values

    def link_lines(self, order: Sequence[tuple[int, float]], max_links: int) -> bytes:
        """The same values as :meth:`links`, as ``Link:`` header lines of a response."""
        return b"".join([b"Link: %s\r\n" % value for value in self.links(order, max_links)])


def file_info_object(info: FileInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {"Path": info.path}
    if info.size:
        doc["Size"] = info.size
    doc["ModTime"] = rfc3339_from_ns(info.mod_time_ns)
    if info.sha1:
        doc["Sha1"] = info.sha1
    if info.sha256:
        doc["Sha256"] = info.sha256
    if info.md5:
        doc["Md5"] = info.md5
    return doc


def client_info_object(client: GeoRecord) -> dict[str, Any]:
    return {
        "CountryCode": client.country_code,
        "ContinentCode": client.continent_code,
        "City": client.city,
        "Country": client.country,
        "Latitude": F32(client.latitude),
        "Longitude": F32(client.longitude),
        "ASName": client.as_name,
        "ASNum": client.as_num,
    }


def mirror_object(candidate: Candidate) -> dict[str, Any]:
    """One mirror in the reference's JSON field order."""
    m = candidate.mirror
    doc: dict[str, Any] = {
        "ID": m.id,
        "Name": m.name,
        "HttpURL": m.http_url,
        "RsyncURL": m.rsync_url,
        "FtpURL": m.ftp_url,
        "SponsorName": m.sponsor_name,
        "SponsorURL": m.sponsor_url,
        "SponsorLogoURL": m.sponsor_logo_url,
        "AdminName": m.admin_name,
        "AdminEmail": m.admin_email,
        "CustomData": m.custom_data,
        "ContinentOnly": m.continent_only,
        "CountryOnly": m.country_only,
        "ASOnly": m.as_only,
        "Score": m.score,
        "Latitude": F32(m.latitude),
        "Longitude": F32(m.longitude),
        "ContinentCode": m.continent_code,
        "CountryCodes": m.country_codes,
        "ExcludedCountryCodes": m.excluded_country_codes,
        "Asnum": m.asnum,
        "Comment": m.comment,
        "Enabled": m.enabled,
    }
    if m.http_down_reason:
        doc["HttpDownReason"] = m.http_down_reason
    if m.https_down_reason:
        doc["HttpsDownReason"] = m.https_down_reason
    doc["StateSince"] = rfc3339_from_unix(m.state_since)
    if m.allow_redirects:
        doc["AllowRedirects"] = m.allow_redirects
    doc["Distance"] = F32(candidate.distance)
    doc["ComputedScore"] = candidate.computed_score
    doc["LastSync"] = rfc3339_from_unix(m.last_sync)
    doc["LastSuccessfulSync"] = rfc3339_from_unix(m.last_successful_sync)
    doc["LastSuccessfulSyncProtocol"] = m.last_successful_sync_protocol
    doc["LastSuccessfulSyncPrecision"] = m.last_successful_sync_precision
    doc["LastModTime"] = rfc3339_from_unix(m.last_mod_time)
    doc["AbsoluteURL"] = encode_url(candidate.absolute_url)
    if candidate.exclude_reason:
        doc["ExcludeReason"] = candidate.exclude_reason
    return doc


def results_document(
    info: FileInfo,
    ip: str,
    client: GeoRecord,
    mirrors: list[Candidate],
    excluded: list[Candidate],
    fallback: bool,
    local_js_path: str,
    pretty: bool,
) -> bytes:
    """The JSON ``Results`` object: compact with a trailing newline, or 4-space indented."""
    doc: dict[str, Any] = {
        "FileInfo": file_info_object(info),
        "IP": ip,
        "ClientInfo": client_info_object(client),
        "MirrorList": [mirror_object(c) for c in mirrors],
    }
    if excluded:
        doc["ExcludedList"] = [mirror_object(c) for c in excluded]
    if fallback:
        doc["Fallback"] = True
    doc["LocalJSPath"] = local_js_path
    return _json_body(doc, pretty)


def unavailable_document(
    info: FileInfo,
    ip: str,
    client: GeoRecord,
    excluded: list[Candidate],
    cause: NoMirrorCause,
    local_js_path: str,
    pretty: bool,
) -> bytes:
    """The body of a JSON request's 503 (no mirror, no fallback): the ``Results`` object
    with an empty ``MirrorList``, and two added keys: ``Cause`` (a word, see
    :class:`NoMirrorCause`) and ``Explanation`` (for people, with what a download gets)."""
    doc: dict[str, Any] = {
        "FileInfo": file_info_object(info),
        "IP": ip,
        "ClientInfo": client_info_object(client),
        "MirrorList": [],
    }
    if excluded:
        doc["ExcludedList"] = [mirror_object(c) for c in excluded]
    doc["LocalJSPath"] = local_js_path
    doc["Cause"] = cause.value
    doc["Explanation"] = (cause_text(cause, len(excluded)) + " "
                          + download_outcome([], info.path, client.is_valid).text)
    return _json_body(doc, pretty)


def _json_body(doc: dict[str, Any], pretty: bool) -> bytes:
    """Compact with a trailing newline, or 4-space indented without (§8.5)."""
    body = dumps(doc, pretty=pretty)
    return body if pretty else body + b"\n"
