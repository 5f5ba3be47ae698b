"""A directory index server for the HTTP scanner's tests, run in the test process (twisted.web).

It serves a real directory: files through ``static.File`` (``GET``/``HEAD`` with
``Content-Length`` and ``Last-Modified``), directories as index pages in one of four styles,
generated from the directory itself:

* ``nginx``: nginx's HTML autoindex (sizes in bytes, times to the minute, UTC);
* ``nginx-rounded``: the same with ``autoindex_exact_size off`` (``1M``, ``12K``);
* ``apache``: Apache 2.4 ``mod_autoindex`` ``FancyIndexing HTMLTable`` (sizes rounded from 973
  bytes on, as ``apr_strfsize``; sort links, a parent link and an icon column);
* ``json``: nginx's ``autoindex_format json``.

HTML pages also carry links the scanner must not follow (another host, ``..``, sort links).
Index pages get an ``ETag`` and ``Last-Modified`` (unless ``validators`` is off) and a ``304``
answer to a matching ``If-None-Match``. Every request is recorded; ``slow`` delays index pages
(to see concurrency); ``stall`` names paths that are never answered.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
from typing import Any
from urllib.parse import quote

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web import http, static
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

STYLES = ("nginx", "nginx-rounded", "apache", "json")


@attrs.define
class Seen:
    """One request: method, path, request headers (lower-case names), start time."""

    method: str
    path: str
    headers: dict[str, str]
    started: float


@attrs.define
class IndexServer:
    """The settings and the record of one server."""

    root: str
    style: str
    clock: IReactorTime
    validators: bool = True
    slow: float = 0.0
    stall: frozenset[str] = frozenset()
    answers: dict[str, int] = attrs.Factory(dict)  # path -> forced status
    redirects: dict[str, str] = attrs.Factory(dict)  # path -> Location of a 302
    head_length: bool = True  # False: HEAD answers carry no Content-Length (Apache, empty file)
    seen: list[Seen] = attrs.Factory(list)
    in_flight: int = 0
    most_in_flight: int = 0

    def site(self) -> Site:
        server = self

        class Recording(Request):
            def process(self) -> None:
                path = (self.path or b"").decode("latin-1")
                headers = {k.decode().lower(): v[0].decode("latin-1")
                           for k, v in self.requestHeaders.getAllRawHeaders()}
                server.seen.append(Seen((self.method or b"").decode(), path, headers,
                                        time.monotonic()))
                server.in_flight += 1
                server.most_in_flight = max(server.most_in_flight, server.in_flight)
                self.notifyFinish().addBoth(self._done)
                if path in server.stall:
                    return
                if self.method == b"HEAD" and not server.head_length:
                    self.setResponseCode(200)
                    self.setHeader(b"transfer-encoding", b"chunked")  # instead of a length
                    self.write(b"")
                    self.finish()
                    return
                if path in server.redirects:
                    self.redirect(server.redirects[path].encode())
                    self.finish()
                    return
                if path in server.answers:
                    self.setResponseCode(server.answers[path])
                    self.finish()
                    return
                super().process()

            def _done(self, _: object) -> None:
                server.in_flight -= 1

        site = Site(_Files(self.root, server=self))
        site.requestFactory = Recording
        site.noisy = False
        return site

    def paths(self, method: str = "GET") -> list[str]:
        return [s.path for s in self.seen if s.method == method]


class _Files(static.File):
    def __init__(self, path: str, *args: Any, server: IndexServer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.server = server

    def createSimilarFile(self, path: str) -> static.File:
        similar = _Files(path, self.defaultType, self.ignoredExts, self.registry,
                         server=self.server)
        similar.processors = self.processors
        similar.indexNames = []
        return similar

    def directoryListing(self) -> Resource:
        assert self.server is not None
        return _Listing(self.path, self.server)


class _Listing(Resource):
    isLeaf = True

    def __init__(self, path: str, server: IndexServer) -> None:
        super().__init__()
        self.directory = path
        self.server = server

    def render_GET(self, request: Request) -> bytes | int:
        body, content_type = render_index(self.directory, self.server.style,
                                          (request.path or b"/").decode("latin-1"))
        request.setHeader(b"content-type", content_type)
        if self.server.validators:
            request.setLastModified(os.stat(self.directory).st_mtime)
            tag = hashlib.sha1(body).hexdigest()[:16].encode()
            if request.setETag(tag) == http.CACHED:
                return b""
        if not self.server.slow:
            return body
        self.server.clock.callLater(self.server.slow, _finish, request, body)
        return NOT_DONE_YET


def _finish(request: Request, body: bytes) -> None:
    if not request.finished and not request._disconnected:
        request.write(body)
        request.finish()


def render_index(directory: str, style: str, url_path: str) -> tuple[bytes, bytes]:
    """The index page of ``directory`` in ``style`` and its content type."""
    rows = []
    for name in sorted(os.listdir(directory)):
        info = os.stat(os.path.join(directory, name))
        rows.append((name, os.path.isdir(os.path.join(directory, name)), info.st_size,
                     int(info.st_mtime)))
    rows.sort(key=lambda row: not row[1])  # directories first, like nginx
    if style == "json":
        items = []
        for name, is_dir, size, mtime in rows:
            item: dict[str, Any] = {"name": name, "type": "directory" if is_dir else "file",
                                    "mtime": http.datetimeToString(mtime).decode()}
            if not is_dir:
                item["size"] = size
            items.append(item)
        return json.dumps(items, ensure_ascii=False).encode(), b"application/json"
    title = html.escape(url_path)
    lines = [f"<html><head><title>Index of {title}</title></head><body>",
             f"<h1>Index of {title}</h1>",
             '<a href="?C=N;O=D">Name</a> <a href="?C=M;O=A">Last modified</a>',
             '<a href="../">../</a> <a href="/">Parent Directory</a>',
             '<a href="http://127.0.0.254:1/elsewhere/">mirror elsewhere/</a>',
             '<a href="#top">top</a> <a href="x/y/">deeper</a>']
    for name, is_dir, size, mtime in rows:
        href = quote(name) + ("/" if is_dir else "")
        text = html.escape(name) + ("/" if is_dir else "")
        if style == "apache":
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
            shown = "  - " if is_dir else apr_strfsize(size)
            lines.append(f'<tr><td valign="top"><a href="{href}"><img src="/icons/unknown.gif" '
                         f'alt="[   ]"></a></td><td><a href="{href}">{text}</a></td>'
                         f'<td align="right">{when}  </td><td align="right">{shown}</td>'
                         f"<td>&nbsp;</td></tr>")
        else:
            when = time.strftime("%d-%b-%Y %H:%M", time.gmtime(mtime))
            shown = "-" if is_dir else (
                nginx_rounded(size) if style == "nginx-rounded" else str(size))
            lines.append(f'<a href="{href}">{text}</a>{" " * 20}{when} {shown:>19}')
    lines.append("</body></html>")
    return "\n".join(lines).encode("utf-8"), b"text/html; charset=utf-8"


def apr_strfsize(size: int) -> str:
    """Apache's rounded size: bytes below 973, else one decimal below 9.95 units."""
    if size < 973:
        return f"{size:3d} "
    value = float(size)
    for unit in "KMGTPE":
        value /= 1024
        if value < 973:
            return f"{value:3.1f}{unit}" if value < 9.95 else f"{value:3.0f}{unit}"
    return "***"


def nginx_rounded(size: int) -> str:
    """nginx's ``autoindex_exact_size off``: bytes up to 9999, else whole K, M or G."""
    if size > 1024 ** 3 - 1:
        return f"{size // 1024 ** 3}G"
    if size > 1024 ** 2 - 1:
        return f"{size // 1024 ** 2}M"
    if size > 9999:
        return f"{size // 1024}K"
    return str(size)
