"""The ``?mirrorstats`` page (spec §8.9): today's downloads per mirror, sync age, health map,
and (ours) the downloads of the last :data:`HISTORY_DAYS` days as a chart
(:mod:`mirrorbits.web.history_chart`).

:func:`mirrorstats_view` reads Redis and builds a pure view-model (:func:`build_view`);
:func:`render_mirrorstats` flattens it through ``templates/mirrorstats.xhtml``, or through the
``mirrorstats.xhtml`` of the configured ``Templates`` directory, which may use the renderers of
:class:`MirrorstatsElement` (slots of ``rows``: see :func:`_row_slots`; of ``points``: ``name``,
``health``, ``x``/``y`` where the dot is drawn and ``place_x``/``place_y`` the mirror's place, which
differ when dots that would cover each other are moved apart), and ``history`` (the chart's
``<svg>``). A broken override falls back to the packaged template
(:class:`mirrorbits.web.pages.TemplateStore`).

Fixes of §20 item 15: bars are 0 % wide (not ``NaN%``) when nobody downloaded today, and each
mirror's counters are looked up by its ID, so a mirror that cannot be read shifts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from attrs import evolve, frozen
from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.web.iweb import IRequest, ITemplateLoader
from twisted.web.template import (
    Comment,
    Element,
    Tag,
    XMLFile,
    XMLString,
    flattenString,
    renderer,
    tags,
)

from mirrorbits.encoding import format_go_duration, format_rfc1123_utc, human_size, plural
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.stats import utc_date
from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import gather
from mirrorbits.store.mirrors import mirror_ids, read_mirror
from mirrorbits.store.statistics import mirrors_downloads_per_day
from mirrorbits.web import history_chart, svgmap
from mirrorbits.web.mapspread import spread
from mirrorbits.web.pages import TEMPLATES

log = Logger()

TEMPLATE_NAME = "mirrorstats.xhtml"
MAP_WIDTH = svgmap.WIDTH
MAP_HEIGHT = svgmap.HEIGHT
DOT_RADIUS = 5  # the stock template's dots
HISTORY_DAYS = 30  # today included
_HOUR = 3600
_DAY = 24 * _HOUR
_YEAR = 365 * _DAY

class MirrorstatsError(Exception):
    """A Redis read failed; the message is the page's 500 answer."""


class MirrorListUnavailable(MirrorstatsError):
    def __init__(self) -> None:
        super().__init__("Cannot fetch the list of mirrors")


class StatsUnavailable(MirrorstatsError):
    def __init__(self) -> None:
        super().__init__("Cannot fetch stats")


@frozen
class SyncOffset:
    """Age of a mirror's trace file (``LastModTime``)."""

    valid: bool
    hours: int = 0
    text: str = "unknown"
    level: str = "unknown"  # red (> 720 h), orange (> 48 h), green, unknown (no trace)
    date: str = ""


@frozen
class ProtocolState:
    protocol: str  # HTTP or HTTPS
    up: bool
    reason: str = ""


@frozen
class MirrorRow:
    """One line of the table."""

    id: int
    name: str
    downloads: int
    bytes: int
    percent_downloads: float
    percent_bytes: float
    sync: SyncOffset
    tz_offset: str
    enabled: bool
    states: tuple[ProtocolState, ...]
    health: str  # disabled, up, down, degraded


@frozen
class MapPoint:
    """A mirror's dot: drawn at ``x``, ``y``; its place is ``place_x``, ``place_y``."""

    name: str
    x: float
    y: float
    health: str
    place_x: float
    place_y: float


@frozen
class MirrorstatsView:
    day: date
    rows: tuple[MirrorRow, ...]
    points: tuple[MapPoint, ...]
    has_tz_adjustment: bool
    total_downloads: int
    total_bytes: int
    history: history_chart.History


# --- pure view-model --------------------------------------------------------------------------


def fuzzy_time(seconds: float) -> str:
    """How long ago, in words: ``up-to-date``, ``3 minutes ago``, ``1 day ago``..."""
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return "up-to-date"
    if seconds < _HOUR:
        amount, unit = int(seconds // 60), "minute"
    elif seconds < _DAY:
        amount, unit = int(seconds // _HOUR), "hour"
    elif seconds > _YEAR:
        amount, unit = int(seconds // _YEAR), "year"
    else:
        amount, unit = int(seconds // _DAY), "day"
    return f"{amount} {unit}{plural(amount)} ago"


def sync_offset(last_mod_time: int | None, now_s: float) -> SyncOffset:
    """The "Last update" cell of a mirror whose trace says ``last_mod_time`` (Unix seconds)."""
    if last_mod_time is None:
        return SyncOffset(valid=False)
    age = now_s - last_mod_time
    hours = int(age / _HOUR)
    level = "red" if hours > 720 else "orange" if hours > 48 else "green"
    try:
        when = format_rfc1123_utc(last_mod_time)
    except (OverflowError, ValueError, OSError):
        when = ""
    return SyncOffset(valid=True, hours=hours, text=fuzzy_time(age), level=level, date=when)


def percent(value: int, maximum: int) -> float:
    """``value`` as a percentage of ``maximum``; 0 when the maximum is 0."""
    return value * 100 / maximum if maximum > 0 else 0.0


def protocol_states(mirror: Mirror) -> tuple[ProtocolState, ...]:
    """The checked protocols: both for a scheme-less URL, else the URL's own."""
    states = []
    if mirror.supports_http:
        states.append(ProtocolState("HTTP", mirror.http_up, mirror.http_down_reason))
    if mirror.supports_https:
        states.append(ProtocolState("HTTPS", mirror.https_up, mirror.https_down_reason))
    return tuple(states)


def health(mirror: Mirror) -> str:
    """``disabled``, ``up``, ``down`` or ``degraded`` (protocols of one mirror disagree)."""
    if not mirror.enabled:
        return "disabled"
    ups = {state.up for state in protocol_states(mirror)}
    if len(ups) > 1:
        return "degraded"
    return "up" if True in ups else "down"


def project(latitude: float, longitude: float) -> tuple[float, float]:
    """The mirrorlist map's projection, rounded to 2 decimals for the SVG text."""
    x, y = svgmap.project(latitude, longitude)
    return round(x, 2), round(y, 2)


# Drawing order of the dots: a down mirror is never hidden under an up one.
_DRAWING_ORDER = {"disabled": 0, "up": 1, "degraded": 2, "down": 3}


def map_points(rows: Sequence[MirrorRow], mirrors: Sequence[Mirror]) -> tuple[MapPoint, ...]:
    """The dots of ``rows``, moved apart where they would cover each other, in drawing order."""
    by_id = {mirror.id: mirror for mirror in mirrors}
    places = [project(by_id[row.id].latitude, by_id[row.id].longitude) for row in rows]
    spots = spread(places, DOT_RADIUS, MAP_WIDTH, MAP_HEIGHT)
    points = [MapPoint(row.name, spot.x, spot.y, row.health, spot.place_x, spot.place_y)
              for row, spot in zip(rows, spots, strict=True)]
    return tuple(sorted(points, key=lambda point: _DRAWING_ORDER.get(point.health, 1)))


def history_days(day: date, count: int = HISTORY_DAYS) -> tuple[date, ...]:
    """The ``count`` days ending with ``day``, oldest first."""
    return tuple(day - timedelta(days=back) for back in range(count - 1, -1, -1))


def build_view(mirrors: Sequence[Mirror], downloads: Mapping[int, int],
               sizes: Mapping[int, int], now_s: float, day: date,
               earlier: Sequence[Mapping[int, int]] = ()) -> MirrorstatsView:
    """The page's data; rows sorted by today's downloads (most first), then by name.

    ``earlier``: the downloads per mirror ID of the days before ``day``, oldest first (at
    most ``HISTORY_DAYS - 1``; missing days count as none).
    """
    top_downloads = max((downloads.get(m.id, 0) for m in mirrors), default=0)
    top_bytes = max((sizes.get(m.id, 0) for m in mirrors), default=0)
    rows = []
    for mirror in mirrors:
        count, size = downloads.get(mirror.id, 0), sizes.get(mirror.id, 0)
        rows.append(MirrorRow(
            id=mirror.id, name=mirror.name, downloads=count, bytes=size,
            percent_downloads=percent(count, top_downloads),
            percent_bytes=percent(size, top_bytes),
            sync=sync_offset(mirror.last_mod_time, now_s),
            tz_offset=format_go_duration(mirror.tz_offset_ms * 1_000_000),
            enabled=mirror.enabled, states=protocol_states(mirror), health=health(mirror),
        ))
    rows.sort(key=lambda row: (-row.downloads, row.name, row.id))
    before = list(earlier)[-(HISTORY_DAYS - 1):]
    none: Mapping[int, int] = {}
    per_day = [none] * (HISTORY_DAYS - 1 - len(before)) + before + [downloads]
    names = {mirror.id: mirror.name for mirror in mirrors}
    return MirrorstatsView(
        day=day, rows=tuple(rows), points=map_points(rows, mirrors),
        has_tz_adjustment=any(mirror.tz_offset_ms != 0 for mirror in mirrors),
        total_downloads=sum(row.downloads for row in rows),
        total_bytes=sum(row.bytes for row in rows),
        history=history_chart.group_series(history_days(day), names, per_day),
    )


# --- Redis ------------------------------------------------------------------------------------


async def _read_mirror(client: RedisClient, mirror_id: int) -> Mirror | None:
    """One mirror, or None (logged) when its record is missing or unreadable."""
    try:
        mirror = await read_mirror(client, mirror_id)
    except Exception as err:
        log.warn("mirrorstats: cannot read mirror {id}: {err}", id=mirror_id, err=err)
        return None
    if mirror is None:
        return None
    return mirror if mirror.id == mirror_id else evolve(mirror, id=mirror_id)


async def mirrorstats_view(client: RedisClient, now_s: float) -> MirrorstatsView:
    """Read the mirrors and today's (UTC) counters, then build the view.

    Raises :class:`MirrorListUnavailable` or :class:`StatsUnavailable`.
    """
    try:
        ids = await mirror_ids(client)
    except Exception as err:
        raise MirrorListUnavailable() from err
    read = await gather(Deferred.fromCoroutine(_read_mirror(client, mid)) for mid in ids)
    mirrors = [mirror for mirror in read if mirror is not None]
    day = utc_date(now_s)
    days = history_days(day)
    try:
        counters = await mirrors_downloads_per_day(client, [mirror.id for mirror in mirrors],
                                                   days)
    except Exception as err:
        raise StatsUnavailable() from err
    today = counters[-1]
    if today is None:
        raise StatsUnavailable()
    unreadable = [d.isoformat() for d, day_counters in zip(days, counters, strict=True)
                  if day_counters is None]
    if unreadable:
        log.warn("mirrorstats: cannot read the counters of {days}; charted as none",
                 days=", ".join(unreadable))
    earlier = [{mirror_id: requests for mirror_id, (requests, _) in (c or {}).items()}
               for c in counters[:-1]]
    downloads = {mirror_id: requests for mirror_id, (requests, _) in today.items()}
    sizes = {mirror_id: size for mirror_id, (_, size) in today.items()}
    return build_view(mirrors, downloads, sizes, now_s, day, earlier)


# --- HTML -------------------------------------------------------------------------------------


def _downloads(count: int) -> str:
    return f"{count} download{'' if count == 1 else 's'}"


def _width(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") + "%"


class MirrorstatsElement(Element):
    """The page; renderers only read the view."""

    loader = XMLFile(FilePath(__file__).sibling("templates").child(TEMPLATE_NAME))

    def __init__(self, view: MirrorstatsView, loader: ITemplateLoader | None = None) -> None:
        super().__init__(loader)
        self.view = view

    @renderer
    def day(self, request: IRequest | None, tag: Tag) -> Tag:
        return tag(self.view.day.isoformat())

    @renderer
    def total_downloads(self, request: IRequest | None, tag: Tag) -> Tag:
        return tag(_downloads(self.view.total_downloads))

    @renderer
    def total_bytes(self, request: IRequest | None, tag: Tag) -> Tag:
        return tag(human_size(self.view.total_bytes))

    @renderer
    def tz_column(self, request: IRequest | None, tag: Tag) -> Tag | str:
        return tag if self.view.has_tz_adjustment else ""

    @renderer
    def land(self, request: IRequest | None, tag: Tag) -> list[Tag | Comment]:
        """The land (the mirrorlist map's) as one path, after a comment crediting its source."""
        shape = svgmap.land()
        path = tag.clone()(d=shape.path_data)
        path.attributes["fill-rule"] = shape.fill_rule
        return [Comment(shape.credit), path]

    @renderer
    def points(self, request: IRequest | None, tag: Tag) -> list[Tag]:
        return [
            tag.clone().fillSlots(name=p.name, x=f"{p.x:g}", y=f"{p.y:g}", health=p.health,
                                  place_x=f"{p.place_x:g}", place_y=f"{p.place_y:g}")
            for p in self.view.points
        ]

    @renderer
    def history(self, request: IRequest | None, tag: Tag) -> list[Any]:
        """The chart's ``<svg>`` (its text, read back as template nodes)."""
        nodes: list[Any] = XMLString(history_chart.render_svg(self.view.history)).load()
        return nodes

    @renderer
    def rows(self, request: IRequest | None, tag: Tag) -> list[Tag]:
        return [tag.clone().fillSlots(**_row_slots(row)) for row in self.view.rows]

    @renderer
    def empty(self, request: IRequest | None, tag: Tag) -> Tag | str:
        if self.view.rows:
            return ""
        return tag.fillSlots(columns=str(5 if self.view.has_tz_adjustment else 4))


def _row_slots(row: MirrorRow) -> dict[str, Any]:
    if not row.enabled:
        states: list[Tag | str] = [tags.span("disabled", class_="state disabled")]
    else:
        states = []
        for s in row.states:
            word = "up" if s.up else "down"
            reason = f": {s.reason}" if s.reason and not s.up else ""
            states += [" "] if states else []
            states.append(tags.span(f"{s.protocol} {word}{reason}", class_=f"state {word}"))
    return {
        "name": row.name,
        "downloads": str(row.downloads),
        "bytes": human_size(row.bytes),
        "downloads_title": _downloads(row.downloads),
        "bytes_title": f"{human_size(row.bytes)} transferred",
        "downloads_width": _width(row.percent_downloads),
        "bytes_width": _width(row.percent_bytes),
        "sync_text": row.sync.text,
        "sync_level": row.sync.level,
        "sync_date": row.sync.date,
        "tz_offset": row.tz_offset,
        "states": states,
    }


async def render_mirrorstats(view: MirrorstatsView, templates_dir: str = "") -> bytes:
    """The whole HTML document."""
    loader = TEMPLATES.loader(TEMPLATE_NAME, templates_dir)
    body: bytes = await flattenString(None, MirrorstatsElement(view, loader))
    return b"<!DOCTYPE html>\n" + body
