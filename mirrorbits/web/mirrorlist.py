"""The ``?mirrorlist`` page (spec §8.8): a view-model of the selection and its template.

:func:`build_view` is pure: it turns the selection (mirrorlist mode) into the texts a person
reads. :class:`MirrorlistElement` renders them through ``mirrorlist.xhtml`` inside the
``base.xhtml`` layout; a ``Templates`` directory may replace either file. Renderers offered
to a custom ``mirrorlist.xhtml``: ``fallback_warning``, ``client`` (slots ``ip``, ``as_name``,
``as_num``), ``located`` (slots ``city``, ``country``) with ``near``/``somewhere`` inside,
``not_located``, ``file_known``/``file_unknown`` (slots ``path``, ``size_human``,
``size_bytes``, ``modified``), ``hashes`` (``md5``, ``sha1``, ``sha256``), ``map``,
``ranked_table``, ``ranked`` (one row: ``row_class``, ``mirror``, ``rank``, ``name``, ``url``,
``country``, ``continent``, ``distance``, ``selection``), ``no_mirrors``,
``excluded_section``, ``excluded`` (one row: as ``ranked`` with ``reason``), ``no_mirror``
(shown when no mirror qualifies; slots ``cause``, ``outcome``: why, and what a download gets),
``generation`` (shown when a ``GenerationIndexes`` index covers the file; slot ``text``: the
``?trace`` ``Generation.Text``, whether only mirrors of the current generation were kept or
the choice fell back to file by file).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence

from attrs import frozen
from twisted.web.iweb import ITemplateLoader
from twisted.web.template import Element, Tag, renderer, tags

from mirrorbits import version_string
from mirrorbits.config import Config
from mirrorbits.encoding import format_rfc1123_utc, human_size
from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.selection import GenerationOutcome
from mirrorbits.selection.types import Candidate
from mirrorbits.urls import encode_path, encode_url
from mirrorbits.web.pages import TEMPLATES, BasePage, display_text, render_page
from mirrorbits.web.svgmap import MAX_MARKERS, Marker, map_svg
from mirrorbits.web.unavailable import NoMirrorCause, cause_text, download_outcome

_SAFE_SCHEMES = ("http", "https")


@frozen
class ClientView:
    ip: str
    as_name: str
    as_num: int
    located: bool
    city: str
    country: str
    latitude: float
    longitude: float


@frozen
class FileView:
    path: str
    scanned: bool
    size_human: str
    size_bytes: int
    modified: str
    md5: str
    sha1: str
    sha256: str


@frozen
class MirrorRow:
    """One row of the mirror or the excluded table; ``*_href`` empty means "no link"."""

    rank: int
    mirror: str
    shown_name: str
    name_href: str
    url_text: str
    url_href: str
    country: str
    continent: str
    distance: str
    selection: str
    weighted: bool
    reason: str
    latitude: float
    longitude: float


@frozen
class NoMirrorView:
    """Why no mirror qualifies, and what a download gets instead (sentences)."""

    cause: str
    outcome: str


@frozen
class GenerationView:
    """What the generation indexes covering the file did (as ``?trace`` says it)."""

    applied: bool  # False: no mirror open to every client holds it, chosen file by file
    text: str


@frozen
class MirrorlistView:
    path: str
    client: ClientView
    file: FileView
    ranked: tuple[MirrorRow, ...]
    excluded: tuple[MirrorRow, ...]
    fallback: bool
    version: str
    hostname: str
    no_mirror: NoMirrorView | None = None
    generation: GenerationView | None = None


def fromip_override(args: Mapping[bytes, Sequence[bytes]], ip: str) -> str:
    """The ``fromip`` query value when it is an IP address, else ``ip`` (§8.3 step 4)."""
    values = args.get(b"fromip")
    if not values:
        return ip
    text = values[0].decode("latin-1").strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return ip
    return text


def selection_text(weight: float) -> str:
    """``NN%`` (rounded), ``<1%`` below one percent, ``n/a`` for an unweighted mirror."""
    if weight <= 0:
        return "n/a"
    if weight < 1:
        return "<1%"
    return f"{weight:.0f}%"


def distance_text(distance: float) -> str:
    return f"{distance:.0f} Km"


def join_url(base: str, path: str) -> str:
    """``base`` and ``path`` with exactly one ``/`` between them (§17.2)."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def safe_href(url: str) -> str:
    """``url`` usable as a link (http/https only, percent-encoded), else ``""``."""
    scheme, colon, _ = url.partition(":")
    if not colon or scheme.lower() not in _SAFE_SCHEMES:
        return ""
    return encode_url(url)


def file_href(base: str, path: str) -> str:
    """The link to ``path`` on a mirror whose URL is ``base`` (``""`` if not http/https).

    The path is encoded as in a redirect's ``Location`` (:func:`mirrorbits.urls.encode_path`).
    """
    href = safe_href(base)
    return join_url(href, encode_path(path)) if href else ""


def _row(rank: int, cand: Candidate, path: str | None) -> MirrorRow:
    mirror = cand.mirror
    url = cand.absolute_url
    return MirrorRow(
        rank=rank,
        mirror=display_text(mirror.name),
        shown_name=display_text(mirror.sponsor_name or mirror.name),
        name_href=safe_href(mirror.sponsor_url) if mirror.sponsor_name else "",
        url_text=display_text(url),
        url_href=safe_href(url) if path is None else file_href(url, path),
        country=display_text(mirror.country_codes),
        continent=display_text(mirror.continent_code),
        distance=distance_text(cand.distance),
        selection=selection_text(cand.weight) if path is not None else "",
        weighted=cand.weight > 0,
        reason=display_text(cand.exclude_reason),
        latitude=mirror.latitude,
        longitude=mirror.longitude,
    )


def build_view(info: FileInfo, ip: str, client: GeoRecord, mirrors: Sequence[Candidate],
               excluded: Sequence[Candidate], fallback: bool, *, version: str,
               hostname: str, cause: NoMirrorCause | None = None,
               generation: GenerationOutcome | None = None) -> MirrorlistView:
    """What the page shows; the excluded mirrors sorted by reason (byte order).

    ``cause`` is set when no mirror qualifies: ``mirrors`` are then the fallbacks (or none).
    ``generation``: what the generation indexes covering the file did (None: none covers it).
    """
    path = display_text(info.path)
    scanned = bool(info.mod_time_ns)
    mtime = info.mod_time_ns // 1_000_000_000 if info.mod_time_ns else None
    file = FileView(
        path=path or "/",
        scanned=scanned,
        size_human=human_size(info.size),
        size_bytes=info.size,
        modified=format_rfc1123_utc(mtime) if scanned else "",
        md5=info.md5 or "N/A",
        sha1=info.sha1 or "N/A",
        sha256=info.sha256 or "N/A",
    )
    located = client.is_valid
    client_view = ClientView(
        ip=display_text(ip), as_name=client.as_name, as_num=client.as_num, located=located,
        city=client.city, country=client.country,
        latitude=client.latitude, longitude=client.longitude,
    )
    reason_order = sorted(excluded, key=lambda c: c.exclude_reason.encode("utf-8", "replace"))
    return MirrorlistView(
        path=path or "/",
        client=client_view,
        file=file,
        ranked=tuple(_row(i, c, info.path) for i, c in enumerate(mirrors, start=1)),
        excluded=tuple(_row(0, c, None) for c in reason_order),
        fallback=fallback,
        version=version,
        hostname=hostname,
        no_mirror=None if cause is None else _no_mirror_view(
            info, located, mirrors if fallback else (), excluded, cause),
        generation=None if generation is None else GenerationView(
            generation.applied, display_text(generation.text)),
    )


def _no_mirror_view(info: FileInfo, located: bool, fallbacks: Sequence[Candidate],
                    excluded: Sequence[Candidate], cause: NoMirrorCause) -> NoMirrorView:
    outcome = download_outcome([c.absolute_url for c in fallbacks], info.path, located)
    return NoMirrorView(cause=cause_text(cause, len(excluded)), outcome=outcome.text)


def _link(text: str, href: str) -> Tag | str:
    return tags.a(text, href=href) if href else text


class MirrorlistElement(Element):
    """The body of the mirror list page."""

    def __init__(self, view: MirrorlistView, loader: ITemplateLoader) -> None:
        super().__init__(loader)
        self.view = view

    @renderer
    def fallback_warning(self, request: object, tag: Tag) -> Tag | str:
        return tag if self.view.fallback else ""

    @renderer
    def no_mirror(self, request: object, tag: Tag) -> Tag | str:
        shown = self.view.no_mirror
        return "" if shown is None else tag.fillSlots(cause=shown.cause, outcome=shown.outcome)

    @renderer
    def generation(self, request: object, tag: Tag) -> Tag | str:
        shown = self.view.generation
        if shown is None:
            return ""
        tag.attributes["class"] = "applied" if shown.applied else "file-by-file"
        return tag.fillSlots(text=shown.text)

    @renderer
    def client(self, request: object, tag: Tag) -> Tag:
        c = self.view.client
        return tag.fillSlots(ip=c.ip, as_name=c.as_name, as_num=str(c.as_num))

    @renderer
    def located(self, request: object, tag: Tag) -> Tag | str:
        c = self.view.client
        return tag.fillSlots(city=c.city, country=c.country) if c.located else ""

    @renderer
    def near(self, request: object, tag: Tag) -> Tag | str:
        return tag if self.view.client.city else ""

    @renderer
    def somewhere(self, request: object, tag: Tag) -> Tag | str:
        return "" if self.view.client.city else tag

    @renderer
    def not_located(self, request: object, tag: Tag) -> Tag | str:
        return "" if self.view.client.located else tag

    @renderer
    def file_known(self, request: object, tag: Tag) -> Tag | str:
        f = self.view.file
        if not f.scanned:
            return ""
        return tag.fillSlots(path=f.path, size_human=f.size_human,
                             size_bytes=str(f.size_bytes), modified=f.modified)

    @renderer
    def file_unknown(self, request: object, tag: Tag) -> Tag | str:
        f = self.view.file
        return "" if f.scanned else tag.fillSlots(path=f.path)

    @renderer
    def hashes(self, request: object, tag: Tag) -> Tag:
        f = self.view.file
        return tag.fillSlots(md5=f.md5, sha1=f.sha1, sha256=f.sha256)

    @renderer
    def map(self, request: object, tag: Tag) -> Tag | str:
        view = self.view
        client = None
        if view.client.located:
            place = ", ".join(p for p in (view.client.city, view.client.country) if p)
            client = Marker(0, f"You ({place})", view.client.latitude, view.client.longitude)
        markers = [
            Marker(row.rank, row.shown_name, row.latitude, row.longitude, row.weighted)
            for row in view.ranked[:MAX_MARKERS]
            if row.latitude or row.longitude
        ]
        if client is None and not markers:
            return ""
        legend = tags.p(class_="legend")(
            tags.span(class_="dot", style="background:#d23c3c"), "you",
            tags.span(class_="dot", style="background:#2e8b3d"), "weighted mirror",
            tags.span(class_="dot", style="background:#3367b0"), "other mirror",
        )
        return tag(map_svg(client, markers), legend)

    @renderer
    def ranked_table(self, request: object, tag: Tag) -> Tag | str:
        return tag if self.view.ranked else ""

    @renderer
    def ranked(self, request: object, tag: Tag) -> list[Tag]:
        return [
            tag.clone().fillSlots(
                row_class="weighted" if row.weighted else "unweighted",
                mirror=row.mirror, rank=f"{row.rank}.",
                name=_link(row.shown_name, row.name_href),
                url=_link(row.url_text, row.url_href),
                country=row.country, continent=row.continent,
                distance=row.distance, selection=row.selection,
            )
            for row in self.view.ranked
        ]

    @renderer
    def no_mirrors(self, request: object, tag: Tag) -> Tag | str:
        return "" if self.view.ranked else tag

    @renderer
    def excluded_section(self, request: object, tag: Tag) -> Tag | str:
        return tag if self.view.excluded else ""

    @renderer
    def excluded(self, request: object, tag: Tag) -> list[Tag]:
        return [
            tag.clone().fillSlots(
                mirror=row.mirror,
                name=_link(row.shown_name, row.name_href),
                url=_link(row.url_text, row.url_href),
                country=row.country, continent=row.continent,
                distance=row.distance, reason=row.reason,
            )
            for row in self.view.excluded
        ]


async def render_mirrorlist(view: MirrorlistView, templates: str = "") -> bytes:
    """The complete HTML page (UTF-8); ``templates`` is the optional override directory."""
    body = MirrorlistElement(view, TEMPLATES.loader("mirrorlist.xhtml", templates))
    page = BasePage(
        TEMPLATES.loader("base.xhtml", templates),
        title=f"Mirrorlist {view.path}", headline=view.path, body=body,
        version=view.version, hostname=view.hostname,
    )
    return await render_page(page)


async def mirrorlist_page(config: Config, info: FileInfo, ip: str, client: GeoRecord,
                          mirrors: Sequence[Candidate], excluded: Sequence[Candidate],
                          fallback: bool, cause: NoMirrorCause | None = None,
                          generation: GenerationOutcome | None = None) -> bytes:
    """The page for one request (the edge: reads the host name and the version)."""
    view = build_view(info, ip, client, mirrors, excluded, fallback,
                      version=version_string(), hostname=socket.gethostname(), cause=cause,
                      generation=generation)
    return await render_mirrorlist(view, config.templates)
