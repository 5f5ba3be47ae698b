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
        raise MirrorValidationError("Can't parse HTTP URL")
