"""Checks on a mirror's identifier and HTTP URL before it is saved (spec §4.3).

A port in the URL is accepted (the reference could not add such mirrors, spec §20 item 1).
"""

from __future__ import annotations

from urllib.parse import urlsplit


class MirrorValidationError(ValueError):
    """The message is the reference's wording, shown as is."""


def check_identifier(name: str) -> None:
    """A mirror name: not empty, no whitespace."""
    if not name:
        raise MirrorValidationError("The identifier cannot be empty")
    if any(char.isspace() for char in name):
        raise MirrorValidationError("The identifier cannot contain a space")


def check_http_url(url: str) -> None:
    """``http://``, ``https://`` or scheme-less (both protocols), with a host."""
    if not url:
        raise MirrorValidationError("You *must* pass at least an HTTP URL")
    if url.startswith(("http://", "https://")):
        full = url
    elif "://" in url:
        raise MirrorValidationError("The HTTP URL has an invalid scheme")
    else:
        full = "http://" + url
    try:
        parts = urlsplit(full)
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError:
        raise MirrorValidationError("Can't parse HTTP URL") from None
    if not parts.hostname or any(char.isspace() or ord(char) < 0x20 for char in url):
        raise MirrorValidationError("Can't parse HTTP URL" + _space_hint(url, parts.hostname))


def _space_hint(url: str, host: str | None) -> str:
    """How to write a URL whose path has a space (``%20``); nothing otherwise."""
    if " " in url and host and " " not in host and not any(
            (char.isspace() and char != " ") or ord(char) < 0x20 for char in url):
        return f": write a space as %20 ({url.replace(' ', '%20')})"
    return ""


def check_scan_urls(rsync_url: str, ftp_url: str) -> None:
    """The rsync and FTP URLs (either may be empty): a scheme the scans use, and a host.

    The reference saves anything, and every scan of the mirror then fails; the usual slip is
    rsync's own ``host::module`` syntax, whose URL form is suggested.
    """
    if rsync_url:
        if not rsync_url.startswith(("rsync://", "rsyncs://")):
            raise MirrorValidationError(
                f"The rsync URL must start with rsync:// (or rsyncs://), not {rsync_url!r}"
                + _rsync_hint(rsync_url))
        _check_host(rsync_url, "rsync")
    if ftp_url:
        if not ftp_url.startswith("ftp://"):
            raise MirrorValidationError(
                f"The FTP URL must start with ftp://, not {ftp_url!r}")
        _check_host(ftp_url, "FTP")


def _rsync_hint(url: str) -> str:
    """How to write ``url`` as an rsync URL, when it is rsync's ``host::module`` syntax or
    lacks a scheme (else nothing)."""
    if "://" in url:
        return ""
    host, separator, path = url.partition("::")
    if separator:
        return f": write it rsync://{host}/{path.lstrip('/')}" if host and "/" not in host else ""
    return f": write it rsync://{url}"


def _check_host(url: str, kind: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError:
        raise MirrorValidationError(f"Can't parse {kind} URL {url!r}") from None
    if not parts.hostname or any(char.isspace() or ord(char) < 0x20 for char in url):
        raise MirrorValidationError(f"Can't parse {kind} URL {url!r}")
