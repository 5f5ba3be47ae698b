"""``?mirrors``: every enabled mirror as JSON, for people and programs (reference issue #47).

Pure: the mirror records and their file counts in, the document out. Only what a mirror
shows the world: no administrator's name or e-mail (no record field says it may be public),
no comment, no custom data, no scan or redirect settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from mirrorbits.encoding import rfc3339_from_unix
from mirrorbits.gojson import F32, dumps
from mirrorbits.model import Mirror
from mirrorbits.urls import encode_url


def _urls(mirror: Mirror) -> dict[str, str]:
    """The mirror's base URL per protocol (``http``/``https``, ``rsync``, ``ftp``)."""
    urls: dict[str, str] = {}
    if mirror.http_url:
        scheme = urlsplit(mirror.http_url).scheme.lower()
        if scheme in ("http", "https"):
            urls[scheme] = encode_url(mirror.http_url)
        else:  # no scheme: the same host for both
            for name in ("http", "https"):
                urls[name] = encode_url(f"{name}://{mirror.http_url.lstrip('/')}")
    if mirror.rsync_url:
        urls["rsync"] = mirror.rsync_url
    if mirror.ftp_url:
        urls["ftp"] = encode_url(mirror.ftp_url)
    return urls


def _states(mirror: Mirror) -> dict[str, dict[str, Any]]:
    """Up or down per protocol the HTTP URL serves, with the health check's reason and since."""
    since = rfc3339_from_unix(mirror.state_since)
    states = {}
    if mirror.http_url and mirror.supports_http:
        states["http"] = {"Up": mirror.http_up, "Reason": mirror.http_down_reason,
                          "Since": since}
    if mirror.http_url and mirror.supports_https:
        states["https"] = {"Up": mirror.https_up, "Reason": mirror.https_down_reason,
                           "Since": since}
    return states


def mirror_entry(mirror: Mirror, files: int | None) -> dict[str, Any]:
    """One mirror of the document; ``files`` None when its count could not be read."""
    return {
        "ID": mirror.id,
        "Name": mirror.name,
        "URLs": _urls(mirror),
        "CountryCodes": mirror.country_fields,
        "ContinentCode": mirror.continent_code,
        "Latitude": F32(mirror.latitude),
        "Longitude": F32(mirror.longitude),
        "Sponsor": {"Name": mirror.sponsor_name, "URL": mirror.sponsor_url,
                    "LogoURL": mirror.sponsor_logo_url},
        "States": _states(mirror),
        "LastSync": rfc3339_from_unix(mirror.last_sync),
        "LastSuccessfulSync": rfc3339_from_unix(mirror.last_successful_sync),
        "Files": files,
    }


def mirrors_document(mirrors: Sequence[Mirror], files: Mapping[int, int],
                     pretty: bool) -> bytes:
    """The ``?mirrors`` JSON: the enabled ones among ``mirrors``, by name."""
    enabled = sorted((m for m in mirrors if m.enabled), key=lambda m: (m.name, m.id))
    return dumps({"Mirrors": [mirror_entry(m, files.get(m.id)) for m in enabled]},
                 pretty=pretty)
