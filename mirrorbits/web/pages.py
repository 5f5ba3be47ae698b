"""HTML pages: where page templates come from, and the shared ``base`` layout (spec §8.8).

Templates are XHTML files for :mod:`twisted.web.template`. The packaged ones live in
``mirrorbits/web/templates``; a ``Templates`` directory in the configuration overrides any of
them by file name. ``base.xhtml`` is the layout (renderers ``title``, ``head``, ``headline``,
``body``, ``footer``); each page template fills its ``body``.
"""

from __future__ import annotations

import os

from attrs import define, field
from twisted.python.filepath import FilePath
from twisted.web.iweb import ITemplateLoader
from twisted.web.template import Element, Tag, XMLFile, flattenString, renderer

from mirrorbits.logs import Logger

log = Logger()

PACKAGED = FilePath(os.path.dirname(os.path.abspath(__file__))).child("templates")


@define(eq=False)
class TemplateStore:
    """Parsed templates, re-read when the file changes; a broken override falls back to the
    packaged template, said in one line once per version of the file (not per request)."""

    _loaded: dict[str, tuple[int, ITemplateLoader]] = field(factory=dict)
    _unusable: dict[str, int] = field(factory=dict)  # override path -> mtime said unusable

    def loader(self, name: str, directory: str = "") -> ITemplateLoader:
        """The template ``name`` from ``directory`` when it holds one, else the packaged one."""
        if directory:
            path = os.path.join(directory, name)
            try:
                stamp: int | None = os.stat(path).st_mtime_ns if os.path.isfile(path) else None
            except OSError:
                stamp = None
            if stamp is not None and self._unusable.get(path) != stamp:
                try:
                    return self._load(path)
                except Exception as err:
                    self._unusable[path] = stamp
                    log.warn("Template {path} is unusable, the packaged one is used: {error}",
                             path=path, error=str(err) or type(err).__name__)
        return self._load(PACKAGED.child(name).path)

    def _load(self, path: str) -> ITemplateLoader:
        stamp = os.stat(path).st_mtime_ns
        known = self._loaded.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        loader = XMLFile(FilePath(path))
        loader.load()  # parse now: a malformed file fails here, not half-way through a page
        self._loaded[path] = (stamp, loader)
        return loader


TEMPLATES = TemplateStore()


class BasePage(Element):
    """The layout shared by the HTML pages: title, headline, the page's body, a footer."""

    def __init__(self, loader: ITemplateLoader, *, title: str, headline: str, body: Element,
                 version: str, hostname: str, head: tuple[Tag, ...] = ()) -> None:
        super().__init__(loader)
        self._title = title
        self._headline = headline
        self._body = body
        self._version = version
        self._hostname = hostname
        self._head = head

    @renderer
    def title(self, request: object, tag: Tag) -> Tag:
        return tag(self._title)

    @renderer
    def head(self, request: object, tag: Tag) -> tuple[Tag, ...]:
        return self._head

    @renderer
    def headline(self, request: object, tag: Tag) -> Tag:
        return tag(self._headline)

    @renderer
    def body(self, request: object, tag: Tag) -> Tag:
        return tag(self._body)

    @renderer
    def footer(self, request: object, tag: Tag) -> Tag:
        return tag.fillSlots(version=self._version, hostname=self._hostname)


async def render_page(page: Element) -> bytes:
    """The whole page as one UTF-8 document (small pages: one write, with a length)."""
    body: bytes = await flattenString(None, page)
    return b"<!DOCTYPE html>\n" + body


def display_text(text: str) -> str:
    """Text safe to encode as UTF-8: undecodable bytes of file names become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
