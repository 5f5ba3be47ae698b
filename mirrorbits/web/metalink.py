"""The Metalink 4 document of a file (RFC 5854) and the link to it on redirects (RFC 6249).

Pure: the file's info and the chosen mirrors in, XML bytes out. ``?meta4`` and a request
that accepts ``application/metalink4+xml`` get it (:mod:`mirrorbits.web.queries`); every
redirect to a file points to it with ``Link: <name?meta4>; rel=describedby;
type="application/metalink4+xml"``, a reference relative to the request's own URL (so it
stays right behind a proxy that adds a prefix).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from mirrorbits.encoding import rfc3339_from_ns
from mirrorbits.model import FileInfo
from mirrorbits.selection.types import Candidate
from mirrorbits.urls import encode_path
from mirrorbits.web.render import redirect_url

CONTENT_TYPE: Final = b"application/metalink4+xml"
NAMESPACE: Final = "urn:ietf:params:xml:ns:metalink"
# The hashes the scan may know: IANA "Hash Function Textual Names" and FileInfo's field.
HASHES: Final = (("sha-256", "sha256"), ("sha-1", "sha1"), ("md5", "md5"))
# Characters XML 1.0 cannot carry at all (not even as references), and lone surrogates
# (bytes of a name that were not UTF-8).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HEX = re.compile("[0-9a-fA-F]+")


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


def file_name(path: str) -> str:
    """The ``name`` of the file: the last part of its path (XML-safe, never empty)."""
    name = _NOT_XML.sub("_", path.rsplit("/", 1)[-1])
    return name if name not in ("", ".", "..") else "_"


def describedby_link(path: str) -> bytes:
    """The ``Link`` value of a redirect to ``path`` that points to its Metalink."""
    name = path.rsplit("/", 1)[-1]
    return (b"<" + encode_path(name).encode("ascii")
            + b'?meta4>; rel=describedby; type="application/metalink4+xml"')


def metalink_document(info: FileInfo, mirrors: Sequence[Candidate], generator: str) -> bytes:
    """The ``<metalink>`` of ``info`` served by ``mirrors`` (in order: priority 1 first)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<metalink xmlns="{NAMESPACE}">',
             f"  <generator>{_text(generator)}</generator>"]
    if info.mod_time_ns is not None:
        lines.append(f"  <updated>{rfc3339_from_ns(info.mod_time_ns)}</updated>")
    lines.append(f"  <file name={quoteattr(file_name(info.path))}>")
    if info.mod_time_ns is not None:
        lines.append(f"    <size>{info.size}</size>")
    for name, field in HASHES:
        value = getattr(info, field)
        if value and _HEX.fullmatch(value):
            lines.append(f'    <hash type="{name}">{value.lower()}</hash>')
    for priority, candidate in enumerate(mirrors, start=1):
        fields = candidate.mirror.country_fields
        location = f' location="{escape(fields[0].lower())}"' if fields else ""
        url = redirect_url(candidate, info.path).decode("ascii")
        lines.append(f'    <url{location} priority="{min(priority, 999999)}">'
                     f"{escape(url)}</url>")
    lines += ["  </file>", "</metalink>", ""]
    return "\n".join(lines).encode("utf-8")
