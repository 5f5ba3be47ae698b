"""The filter rules of §9.2, applied in order; the first failing rule wins.

Rules 1 to 3 (enabled, protocol, file) do not depend on the client: :func:`prefilter` applies
them once per file.  Rules 4 to 7 (the client restrictions) are the predicates below;
``fast.redirect_table`` turns them into per-client-attribute sets of excluded mirrors, and
:func:`client_reason` names the first one a mirror fails.  Cost of :func:`prefilter`: O(n) for
n mirrors; what depends only on the file (outdated-file rule, local mtime truncations) is
computed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from attrs import frozen

from mirrorbits.encoding import format_go_duration, truncate_ns
from mirrorbits.model import FileInfo, GeoRecord, Mirror, OutdatedRule
from mirrorbits.selection.types import Candidate, Secure, SelectionOptions

# Exclusion texts (shown in JSON ``ExcludeReason`` and on the mirrorlist page).
DISABLED = "Disabled"
NOT_HTTPS = "Not HTTPS"
NOT_HTTP = "Not HTTP"
DOWN = "Down"
SIZE_MISMATCH = "File size mismatch"
CONTINENT_ONLY = "Continent only"
COUNTRY_ONLY = "Country only"
AS_ONLY = "AS only"
COUNTRY_RESTRICTION = "User's country restriction"

_NS_PER_MINUTE = 60 * 1_000_000_000
_NS_PER_MS = 1_000_000
_INT64_SPAN = 1 << 64  # more than any difference of two times in nanoseconds

Entry = tuple[Mirror, FileInfo | None]


def same_asn(client_asn: int, mirror_asn: int) -> bool:
    """Whether a mirror is in the client's autonomous system.

    Fix of reference bug §20-13: an unknown ASN (0) matches nothing, so a client without an
    ASN record no longer gets the same-AS bonus (nor the "same ASN first" fallback rank, nor
    passes an ``ASOnly`` mirror) just because the mirror's ASN is unknown too.
    """
    return client_asn > 0 and client_asn == mirror_asn


def split_codes(codes: str) -> tuple[str, ...]:
    """Whitespace-separated country codes as a tuple."""
    return tuple(codes.split())


def ensure_scheme(url: str, scheme: str) -> str:
    """``url`` unchanged if it names ``http://``/``https://``, else ``<scheme>://url``."""
    if url.startswith(("http://", "https://")):
        return url
    return f"{scheme}://{url}"


def _https_problem(mirror: Mirror) -> str:
    if mirror.http_url.startswith("http://"):
        return NOT_HTTPS
    if not mirror.https_up:
        return mirror.https_down_reason or DOWN
    return ""


def _http_problem(mirror: Mirror) -> str:
    if mirror.http_url.startswith("https://"):
        return NOT_HTTP
    if not mirror.http_up:
        return mirror.http_down_reason or DOWN
    return ""


def check_protocol(candidate: Candidate, secure: Secure) -> str:
    """Rule 2: set ``absolute_url`` and return the exclusion reason ("" if usable)."""
    mirror = candidate.mirror
    url = mirror.http_url
    if secure is Secure.WITH_TLS:
        candidate.absolute_url = ensure_scheme(url, "https")
        return _https_problem(mirror)
    if secure is Secure.WITHOUT_TLS:
        candidate.absolute_url = ensure_scheme(url, "http")
        return _http_problem(mirror)
    https_problem = _https_problem(mirror)
    if not https_problem:
        candidate.absolute_url = ensure_scheme(url, "https")
        return ""
    candidate.absolute_url = ensure_scheme(url, "http")
    http_problem = _http_problem(mirror)
    if not http_problem or http_problem == https_problem:
        return http_problem
    return f"{http_problem} / {https_problem}"


def outdated_rule(path: str, rules: Iterable[OutdatedRule]) -> OutdatedRule | None:
    """The first ``AllowOutdatedFiles`` rule whose prefix starts ``path`` (empty matches all)."""
    for rule in rules:
        if path.startswith(rule.prefix):
            return rule
    return None


class _FileCheck:
    """Rule 3, with everything that depends only on the requested file computed once."""

    __slots__ = ("_local_by_precision", "check_size", "fix_tz", "local_mtime", "local_size",
                 "max_outdated_ns", "min_delta_ns")

    def __init__(self, local: FileInfo, opts: SelectionOptions) -> None:
        if local.mod_time_ns is None:
            raise ValueError("the local file's modification time is unknown")
        rule = outdated_rule(local.path, opts.allow_outdated_files)
        self.check_size = rule is None
        self.max_outdated_ns = 0 if rule is None else rule.minutes * _NS_PER_MINUTE
        # a newer copy: never, unless the rule says Newer (then by any amount, of the same size)
        self.min_delta_ns = -_INT64_SPAN if rule is not None and rule.newer else 0
        self.local_size = local.size
        self.local_mtime = local.mod_time_ns
        self.fix_tz = opts.fix_timezone_offsets
        self._local_by_precision: dict[int, int] = {}

    def __call__(self, mirror: Mirror, mirror_file: FileInfo | None) -> str:
        size = 0 if mirror_file is None else mirror_file.size
        if self.check_size and size != self.local_size:
            return SIZE_MISMATCH
        mtime = None if mirror_file is None else mirror_file.mod_time_ns
        if mtime is None:
            return ""
        if self.fix_tz:
            mtime += mirror.tz_offset_ms * _NS_PER_MS
        precision = mirror.last_successful_sync_precision
        local = self._local_by_precision.get(precision)
        if local is None:
            local = self._local_by_precision[precision] = truncate_ns(self.local_mtime, precision)
        delta = local - truncate_ns(mtime, precision)
        if delta < self.min_delta_ns or delta > self.max_outdated_ns:
            return f"Mod time mismatch (diff: {format_go_duration(delta)})"
        if delta < 0 and size != self.local_size:  # a newer copy is the same file, or none
            return SIZE_MISMATCH
        return ""


def outside_continent(mirror: Mirror, continent: str) -> bool:
    """Rule 4 for a located client: a continent-only mirror of another continent."""
    return mirror.continent_only and continent != mirror.continent_code


def outside_countries(mirror: Mirror, country: str) -> bool:
    """Rule 5 for a located client: a country-only mirror that does not list the country."""
    return mirror.country_only and country not in split_codes(mirror.country_codes)


def outside_as(mirror: Mirror, asn: int) -> bool:
    """Rule 6 for a located client: an AS-only mirror of another (or an unknown) AS."""
    return mirror.as_only and not same_asn(asn, mirror.asnum)


def bans_country(mirror: Mirror, country: str) -> bool:
    """Rule 7 for a located client: the mirror excludes the client's country."""
    return country in split_codes(mirror.excluded_country_codes)


def client_reason(mirror: Mirror, client: GeoRecord) -> str:
    """Rules 4 to 7: the first restriction ``mirror`` puts on ``client`` ("" if none).

    A client without location passes no restriction of rules 4 to 6, and rule 7 never
    excludes it.
    """
    if not client.is_valid:
        if mirror.continent_only:
            return CONTINENT_ONLY
        if mirror.country_only:
            return COUNTRY_ONLY
        return AS_ONLY if mirror.as_only else ""
    if outside_continent(mirror, client.continent_code):
        return CONTINENT_ONLY
    if outside_countries(mirror, client.country_code):
        return COUNTRY_ONLY
    if outside_as(mirror, client.as_num):
        return AS_ONLY
    if bans_country(mirror, client.country_code):
        return COUNTRY_RESTRICTION
    return ""


@frozen
class Prefiltered:
    """Rules 1 to 3 for one file and protocol demand: what does not depend on the client.

    Each entry is ``(mirror, its file info, absolute URL, reason, restricted)``; the reason
    is empty when the mirror passes these rules, ``restricted`` tells whether rules 4 to 7
    (client restrictions) can exclude it at all.  Valid as long as the mirrors, their file info,
    the local file and the options it was computed from do not change.
    """

    entries: tuple[tuple[Mirror, FileInfo | None, str, str, bool], ...]


def prefilter(
    local: FileInfo, entries: Sequence[Entry], secure: Secure, opts: SelectionOptions
) -> Prefiltered:
    """Apply the client-independent rules (enabled, protocol, file) to ``entries``."""
    file_check = _FileCheck(local, opts)
    result = []
    for mirror, mirror_file in entries:
        candidate = Candidate(mirror, mirror_file)
        if not mirror.enabled:
            reason = DISABLED
        else:
            reason = check_protocol(candidate, secure) or file_check(mirror, mirror_file)
        restricted = bool(mirror.continent_only or mirror.country_only or mirror.as_only
                          or mirror.excluded_country_codes)
        result.append((mirror, mirror_file, candidate.absolute_url, reason, restricted))
    return Prefiltered(tuple(result))
