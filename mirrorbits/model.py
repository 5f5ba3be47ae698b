"""Value types shared by every layer: mirrors, file information, client location.

Pure: no I/O. Times are integers on the Unix time line, ``None`` meaning Go's
"zero time" (a field absent from Redis):

* mirror times (``state_since``, ``last_sync``...) are whole Unix seconds;
* file modification times are nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

from attrs import field, frozen

# Values of Mirror.allow_redirects.
REDIRECTS_DEFAULT = 0
REDIRECTS_ALLOWED = 1
REDIRECTS_DISALLOWED = 2

# Values of Mirror.last_successful_sync_protocol and of scan log entries.
PROTOCOL_RSYNC = 0
PROTOCOL_FTP = 1
PROTOCOL_HTTP = 2  # not in the reference: its scanners are rsync and FTP only


@frozen
class Mirror:
    """One mirror as stored in ``MIRROR_<id>`` (database version 2)."""

    id: int = 0
    name: str = ""
    http_url: str = ""
    rsync_url: str = ""
    ftp_url: str = ""
    sponsor_name: str = ""
    sponsor_url: str = ""
    sponsor_logo_url: str = ""
    admin_name: str = ""
    admin_email: str = ""
    custom_data: str = ""
    continent_only: bool = False
    country_only: bool = False
    as_only: bool = False
    score: int = 0
    latitude: float = 0.0
    longitude: float = 0.0
    continent_code: str = ""
    country_codes: str = ""
    excluded_country_codes: str = ""
    asnum: int = 0
    comment: str = ""
    enabled: bool = False
    http_up: bool = False
    https_up: bool = False
    http_down_reason: str = ""
    https_down_reason: str = ""
    state_since: int | None = None
    allow_redirects: int = REDIRECTS_DEFAULT
    tz_offset_ms: int = 0
    last_sync: int | None = None
    last_successful_sync: int | None = None
    last_successful_sync_protocol: int = PROTOCOL_RSYNC
    last_successful_sync_precision: int = 0
    last_mod_time: int | None = None

    @property
    def country_fields(self) -> list[str]:
        """``CountryCodes`` split on whitespace; the first is the primary country."""
        return self.country_codes.split()

    @property
    def excluded_country_fields(self) -> list[str]:
        """``ExcludedCountryCodes`` split on whitespace."""
        return self.excluded_country_codes.split()

    @property
    def supports_http(self) -> bool:
        return not self.http_url.startswith("https://")

    @property
    def supports_https(self) -> bool:
        return not self.http_url.startswith("http://")

    @property
    def is_up(self) -> bool:
        """The reference's ``IsUp``: one verdict from the two protocol states."""
        if self.http_up == self.https_up:
            return self.http_up
        if self.http_url.startswith("http://"):
            return self.http_up
        if self.http_url.startswith("https://"):
            return self.https_up
        return False

    @property
    def status_text(self) -> str:
        """``up``/``down`` or, for a scheme-less mirror with differing states, ``up/down``."""
        if self.http_up != self.https_up and not self.http_url.startswith(("http://", "https://")):
            return f"{_updown(self.http_up)}/{_updown(self.https_up)}"
        return _updown(self.is_up)


def _updown(up: bool) -> str:
    return "up" if up else "down"


@frozen
class FileInfo:
    """A file of the local repository (``FILE_<path>``) or of a mirror (``FILEINFO_``)."""

    path: str
    size: int = 0
    mod_time_ns: int | None = None
    sha1: str = ""
    sha256: str = ""
    md5: str = ""


@frozen
class GeoRecord:
    """What GeoIP knows about an IP address (the JSON ``ClientInfo``)."""

    country_code: str = ""
    continent_code: str = ""
    city: str = ""
    country: str = ""
    latitude: float = 0.0
    longitude: float = 0.0
    as_name: str = ""
    as_num: int = 0

    @property
    def is_valid(self) -> bool:
        """A location is usable only when its country is known."""
        return self.country_code != ""


@frozen
class Fallback:
    """One configured fallback mirror."""

    url: str
    country_code: str = ""
    continent_code: str = ""


@frozen
class OutdatedRule:
    """One ``AllowOutdatedFiles`` entry (``newer``: a copy newer than the local file, of its
    size, is accepted too, by any amount: mirrors that sync on their own, without keeping
    the times)."""

    prefix: str = ""
    minutes: int = 0
    newer: bool = False


@frozen
class Sentinel:
    """One ``RedisSentinels`` entry (``host:port``)."""

    host: str = field(default="")
