"""The download history of ``?mirrorstats`` as a self-contained SVG bar chart (no script, no
external asset): one column per day, stacked by mirror (the busiest ones, then "others"),
a date axis, a count axis and a legend.

Pure: :func:`group_series` picks the series, :func:`render_svg` writes the SVG text. Every
mirror name is XML-escaped, and characters XML cannot hold are replaced by U+FFFD, so any
name gives well-formed markup and never injects any.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

from attrs import frozen

WIDTH = 720
TOP_MIRRORS = 6
OTHERS = "others"
#: Colours of the busiest mirrors, busiest first; "others" is grey. None is a colour the page
#: gives another meaning (the table's bars, the health colours).
PALETTE = ("#2f6fb0", "#e5731a", "#3a9b5c", "#c43c5c", "#7a52b3", "#1c9c9c")
OTHERS_COLOUR = "#a3a8ae"
_TEXT = "#444444"
_GRID = "#e3e5e8"
_AXIS = "#888888"

_PLOT_LEFT = 52
_PLOT_RIGHT = WIDTH - 12
_PLOT_TOP = 12
_PLOT_HEIGHT = 200
_BASELINE = _PLOT_TOP + _PLOT_HEIGHT
_LEGEND_TOP = _BASELINE + 36
_LEGEND_ROW = 20
_LEGEND_COLUMNS = 2
_LEGEND_NAME_CHARS = 24
_BAR_FILL = 0.76  # share of a day's slot the bar covers
_TICKS = 4
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@frozen
class Series:
    """One stack layer: a mirror (or "others") and its downloads per day, oldest first."""

    name: str
    requests: tuple[int, ...]
    colour: str

    @property
    def total(self) -> int:
        return sum(self.requests)


@frozen
class History:
    """The days (oldest first) and the layers, bottom first."""

    days: tuple[date, ...]
    series: tuple[Series, ...]

    def day_total(self, index: int) -> int:
        return sum(layer.requests[index] for layer in self.series)


def group_series(days: Sequence[date], names: Mapping[int, str],
                 per_day: Sequence[Mapping[int, int]], top: int = TOP_MIRRORS) -> History:
    """The ``top`` busiest mirrors of the period (most downloads first, then by name), the
    others summed in one layer; mirrors without any download are left out.

    ``names`` maps each mirror ID to its name; ``per_day[i]`` its downloads on ``days[i]``.
    """
    if len(per_day) != len(days):
        raise ValueError(f"{len(per_day)} days of counters for {len(days)} days")
    rows = [(name, tuple(max(0, day.get(mirror_id, 0)) for day in per_day))
            for mirror_id, name in names.items()]
    busy = sorted((row for row in rows if sum(row[1]) > 0),
                  key=lambda row: (-sum(row[1]), row[0]))
    series = [Series(name, requests, PALETTE[rank % len(PALETTE)])
              for rank, (name, requests) in enumerate(busy[:top])]
    rest = busy[top:]
    if rest:
        summed = tuple(sum(day) for day in zip(*(requests for _, requests in rest), strict=True))
        label = f"{OTHERS}, {len(rest)} mirror{'' if len(rest) == 1 else 's'}"
        series.append(Series(label, summed, OTHERS_COLOUR))
    return History(tuple(days), tuple(series))


def nice_step(maximum: int, ticks: int = _TICKS) -> int:
    """A round step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks up to
    ``maximum``; at least 1."""
    if maximum <= ticks:
        return 1
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return int(factor * magnitude)
    return int(10 * magnitude)  # not reached


def short_count(value: int) -> str:
    """A tick label: ``950``, ``1200``, ``15k``, ``2.5M``."""
    if value < 10_000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:g}k"
    return f"{value / 1_000_000:g}M"


def day_label(day: date) -> str:
    return f"{_MONTHS[day.month - 1]} {day.day}"


def xml_text(text: str) -> str:
    """``text`` escaped for XML content or a quoted attribute."""
    return escape(_NOT_XML.sub("\ufffd", text), quote=True)


def _shorten(name: str) -> str:
    return name if len(name) <= _LEGEND_NAME_CHARS else name[:_LEGEND_NAME_CHARS - 1] + "…"


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _downloads(count: int) -> str:
    return f"{count:,} download{'' if count == 1 else 's'}"


def chart_height(history: History) -> int:
    rows = max(1, math.ceil(len(history.series) / _LEGEND_COLUMNS))
    return _LEGEND_TOP + rows * _LEGEND_ROW


def render_svg(history: History, element_id: str = "history") -> str:
    """The chart as one ``<svg>`` element."""
    days = history.days
    height = chart_height(history)
    first, last = (days[0], days[-1]) if days else (None, None)
    title = (f"Downloads per day and mirror, {first.isoformat()} to {last.isoformat()} (UTC)"
             if first and last else "Downloads per day and mirror")
    summary = "; ".join(f"{layer.name}: {_downloads(layer.total)}" for layer in history.series)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="history" viewBox="0 0 {WIDTH} {height}"'
        f' width="{WIDTH}" height="{height}" role="img"'
        f' aria-labelledby="{element_id}-title {element_id}-desc"'
        f' font-family="system-ui, sans-serif" font-size="11" fill="{_TEXT}">',
        f'<title id="{element_id}-title">{xml_text(title)}</title>',
        f'<desc id="{element_id}-desc">{xml_text(summary or "No downloads.")}</desc>',
    ]
    totals = [history.day_total(i) for i in range(len(days))]
    peak = max(totals, default=0)
    step = nice_step(peak)
    scale_top = max(step, math.ceil(peak / step) * step)
    out += _count_axis(step, scale_top)
    slot = (_PLOT_RIGHT - _PLOT_LEFT) / max(1, len(days))
    out += _bars(history, slot, scale_top)
    out += _date_axis(days, slot)
    if peak == 0:
        out.append(f'<text x="{_n((_PLOT_LEFT + _PLOT_RIGHT) / 2)}"'
                   f' y="{_n(_PLOT_TOP + _PLOT_HEIGHT / 2)}" text-anchor="middle"'
                   f' font-size="13">No downloads in these {len(days)} days</text>')
    out += _legend(history)
    out.append("</svg>")
    return "\n".join(out)


def _y(value: float, scale_top: int) -> float:
    return _BASELINE - value * _PLOT_HEIGHT / scale_top


def _count_axis(step: int, scale_top: int) -> list[str]:
    out = ['<g class="count-axis" text-anchor="end">']
    for value in range(0, scale_top + 1, step):
        y = _n(_y(value, scale_top))
        colour = _AXIS if value == 0 else _GRID
        out.append(f'<line x1="{_PLOT_LEFT}" x2="{_PLOT_RIGHT}" y1="{y}" y2="{y}"'
                   f' stroke="{colour}" stroke-width="1"/>')
        out.append(f'<text x="{_PLOT_LEFT - 6}" y="{y}" dy="0.35em">{short_count(value)}</text>')
    out.append("</g>")
    return out


def _bars(history: History, slot: float, scale_top: int) -> list[str]:
    """A group per day with downloads: its layers, and one hover text for the whole day
    (its total, then each layer's count, busiest first)."""
    out = ['<g class="bars">']
    width = _n(slot * _BAR_FILL)
    for index, day in enumerate(history.days):
        total = history.day_total(index)
        if total <= 0:
            continue
        x = _n(_PLOT_LEFT + index * slot + slot * (1 - _BAR_FILL) / 2)
        lines = [f"{day.isoformat()}: {_downloads(total)}"]
        rects = []
        stacked = 0
        for layer in history.series:
            value = layer.requests[index]
            if value <= 0:
                continue
            lines.append(f"{layer.name}: {value:,}")
            top, bottom = _y(stacked + value, scale_top), _y(stacked, scale_top)
            stacked += value
            rects.append(f'<rect x="{x}" y="{_n(top)}" width="{width}"'
                         f' height="{_n(bottom - top)}" fill="{layer.colour}"/>')
        title = "&#10;".join(xml_text(line) for line in lines)
        out.append(f"<g><title>{title}</title>{''.join(rects)}</g>")
    out.append("</g>")
    return out


def _date_axis(days: Sequence[date], slot: float) -> list[str]:
    """A label under today and under every 7th day before it."""
    out = ['<g class="date-axis" text-anchor="middle">']
    for index, day in enumerate(days):
        if (len(days) - 1 - index) % 7:
            continue
        x = _n(_PLOT_LEFT + (index + 0.5) * slot)
        out.append(f'<line x1="{x}" x2="{x}" y1="{_BASELINE}" y2="{_BASELINE + 4}"'
                   f' stroke="{_AXIS}" stroke-width="1"/>')
        out.append(f'<text x="{x}" y="{_BASELINE + 16}">{day_label(day)}</text>')
    out.append("</g>")
    return out


def _legend(history: History) -> list[str]:
    out = ['<g class="legend">']
    column_width = (_PLOT_RIGHT - _PLOT_LEFT) / _LEGEND_COLUMNS
    for rank, layer in enumerate(history.series):
        row, column = divmod(rank, _LEGEND_COLUMNS)
        x = _PLOT_LEFT + column * column_width
        y = _LEGEND_TOP + row * _LEGEND_ROW
        out.append(f'<g><title>{xml_text(layer.name)}: {_downloads(layer.total)}</title>'
                   f'<rect x="{_n(x)}" y="{y - 10}" width="12" height="12" rx="2"'
                   f' fill="{layer.colour}"/>'
                   f'<text x="{_n(x + 18)}" y="{y}">{xml_text(_shorten(layer.name))}'
                   f' ({layer.total:,})</text></g>')
    out.append("</g>")
    return out
