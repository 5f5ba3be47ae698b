"""Why no mirror can serve a file, and what a download of it gets instead (pure).

The reference answers a bare ``503 Service Unavailable`` (or silently a fallback) both to a
download and to ``?mirrorlist`` when no mirror qualifies. Here the page says why and where a
download goes, and a JSON request gets the same explanation with its 503. The causes are
told apart in the order a request meets them: a directory is never on a mirror, a file must
be indexed before any mirror can be matched against it, the mirrors must be readable, and
then either no mirror holds the file or every one that does is excluded (each with its
reason).
"""

from __future__ import annotations

import enum

from attrs import frozen

from mirrorbits.urls import file_url


class NoMirrorCause(enum.Enum):
    """Why no mirror qualifies; the value is the JSON ``Cause``."""

    DIRECTORY = "directory"
    NOT_INDEXED = "not-indexed"
    DATABASE = "database"
    ON_NO_MIRROR = "on-no-mirror"
    ALL_EXCLUDED = "all-excluded"


def no_mirror_cause(is_file: bool, indexed: bool, unreadable: bool,
                    excluded: int) -> NoMirrorCause:
    """The cause, from what the request found: a file or not, whether the file is indexed,
    whether its mirrors could be read, and how many mirrors holding it were excluded."""
    if not is_file:
        return NoMirrorCause.DIRECTORY
    if not indexed:
        return NoMirrorCause.NOT_INDEXED
    if unreadable:
        return NoMirrorCause.DATABASE
    if excluded:
        return NoMirrorCause.ALL_EXCLUDED
    return NoMirrorCause.ON_NO_MIRROR


_CAUSES = {
    NoMirrorCause.DIRECTORY: "This is a directory: only files are redirected to mirrors.",
    NoMirrorCause.NOT_INDEXED: (
        "This file is not in the index yet: the repository scan has not reached it "
        "(mirrorbits-ctl refresh indexes the repository now), or the database cannot be "
        "read."),
    NoMirrorCause.DATABASE: (
        "The mirrors holding this file cannot be read from the database now."),
    NoMirrorCause.ON_NO_MIRROR: (
        "No mirror has this file: none listed it at its last scan "
        "(mirrorbits-ctl scan NAME scans a mirror again)."),
}


def cause_text(cause: NoMirrorCause, excluded: int) -> str:
    """One or two sentences for people."""
    if cause is NoMirrorCause.ALL_EXCLUDED:
        if excluded == 1:
            return ("The only mirror that has this file is excluded from this request; "
                    "the reason is in the table of excluded mirrors.")
        return (f"Each of the {excluded} mirrors that have this file is excluded from this "
                "request; the reasons are in the table of excluded mirrors.")
    return _CAUSES[cause]


UNAVAILABLE = "503 Service Unavailable"


@frozen
class DownloadOutcome:
    """What a download of the file gets instead of a mirror: a fallback, or a 503.

    ``url`` is the file's URL on the first fallback; ``drawn`` when the client has no
    location, so that each request draws the order of the fallbacks anew.
    """

    url: str = ""
    drawn: bool = False

    @property
    def text(self) -> str:
        if not self.url:
            return (f"A download of this file gets {UNAVAILABLE}: no fallback is "
                    "configured (Fallbacks).")
        if self.drawn:
            return ("A download of this file is redirected to one of the fallbacks "
                    "(Fallbacks) in the table of mirrors, drawn at random for each request "
                    "since your location is unknown.")
        return ("A download of this file is redirected to a fallback (Fallbacks), the first "
                f"in the table of mirrors: {self.url}")


def download_outcome(fallback_urls: list[str], path: str, located: bool) -> DownloadOutcome:
    """The outcome for ``path`` given the fallbacks' base URLs in rank order (empty: none)."""
    if not fallback_urls:
        return DownloadOutcome()
    return DownloadOutcome(file_url(fallback_urls[0], path), drawn=not located)
